package kafkatest

import (
	"net"
	"testing"
	"time"
)

func TestDownRefusesAndUpAccepts(t *testing.T) {
	c := Start(t, 2)
	addrs := c.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("addrs %v", addrs)
	}
	open, err := net.Dial("tcp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	c.Down()
	for _, a := range addrs {
		if conn, err := net.Dial("tcp", a); err == nil {
			conn.Close()
			t.Fatalf("%s accepted a connection while down", a)
		}
	}
	_ = open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection survived the outage")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the connection was not closed by the outage")
	}

	if err := c.Up(); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		conn, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatalf("%s refused after Up: %v", a, err)
		}
		conn.Close()
	}
	if got := c.Addrs(); got[0] != addrs[0] || got[1] != addrs[1] {
		t.Fatalf("addresses changed: %v then %v", addrs, got)
	}
}
