package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/transport/kafka/kafkatest"
)

const usageTopic = "platform.usage.recorded"

// kafkaCluster is a Postgres schema for the domain store and outbox plus an
// in-process Kafka protocol broker (franz-go's kfake) over TCP, which
// replicas of `millrace serve` share.
type kafkaCluster struct {
	*pgCluster
	kafka *kafkatest.Cluster
}

func newKafkaCluster(t *testing.T, brokers int) *kafkaCluster {
	t.Helper()
	return &kafkaCluster{pgCluster: newPGCluster(t), kafka: kafkatest.Start(t, brokers)}
}

func (c *kafkaCluster) replica(t *testing.T, name string) *instance {
	t.Helper()
	in := c.pgCluster.replica(t, name)
	in.env = append(in.env, "MILLRACE_TRANSPORT=kafka",
		"MILLRACE_KAFKA_BROKERS="+strings.Join(c.kafka.Addrs(), ","),
		"MILLRACE_KAFKA_PARTITIONS=4")
	return in
}

// produceForeign writes usage events as a plain Kafka client would, with no
// Watermill or CloudEvents headers: only a key and a JSON value.
func (c *kafkaCluster) produceForeign(t *testing.T, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.kafka.Addrs()...))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = kadm.NewClient(cl).CreateTopic(ctx, 4, 1, nil, usageTopic)
	if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
		require.NoError(t, err)
	}
	for i := from; i < to; i++ {
		rec := &kgo.Record{Topic: usageTopic, Key: []byte(fmt.Sprint(i)),
			Value: []byte(usageEvent(i))}
		require.NoError(t, cl.ProduceSync(ctx, rec).FirstErr())
	}
}

func TestKafkaReplicasRebalanceAndReadForeignRecords(t *testing.T) {
	c := newKafkaCluster(t, 3)
	const foreign, n = 20, 240
	// Written before any Millrace consumer group exists, by a client that
	// knows nothing of Watermill: each must be handled, once.
	c.produceForeign(t, 0, foreign)

	a := c.replica(t, "replica-a")
	cmdA, _ := a.serve(t)
	b := c.replica(t, "replica-b")
	var cmdB *exec.Cmd
	for i := foreign; i < n; i++ {
		switch i {
		case n / 3:
			cmdB, _ = b.serve(t) // joins the groups: partitions move to it
		case 2 * n / 3:
			require.NoError(t, stop(t, cmdA, syscall.SIGTERM), "replica-a did not drain cleanly")
		}
		in := a
		if i >= 2*n/3 || (i >= n/3 && i%2 == 1) {
			in = b
		}
		status, body := in.post(t, usageTopic, usageEvent(i))
		require.Equal(t, http.StatusAccepted, status, body)
	}
	c.waitEffects(t, n, 60*time.Second)
	require.NoError(t, stop(t, cmdB, syscall.SIGTERM))
	var queue *string
	require.NoError(t, c.db.QueryRowContext(context.Background(),
		"SELECT to_regclass('millrace_queue')::text").Scan(&queue))
	require.Nil(t, queue, "the events went through Kafka, not the Postgres queue")
}

func TestKafkaKilledConsumerLosesNothing(t *testing.T) {
	c := newKafkaCluster(t, 1)
	const n = 200
	in := c.replica(t, "crashing")
	cmd, _ := in.serve(t)
	for i := range n / 2 {
		status, body := in.post(t, usageTopic, usageEvent(i))
		require.Equal(t, http.StatusAccepted, status, body)
	}
	ctx := context.Background()
	var rows int
	require.Eventually(t, func() bool {
		err := c.db.QueryRowContext(ctx, "SELECT count(*) FROM usage_events").Scan(&rows)
		return err == nil && rows > 0
	}, 20*time.Second, 10*time.Millisecond)
	_ = stop(t, cmd, syscall.SIGKILL)
	t.Logf("killed with %d of %d events recorded", rows, n/2)

	in.serve(t)
	for i := n / 2; i < n; i++ {
		status, body := in.post(t, usageTopic, usageEvent(i))
		require.Equal(t, http.StatusAccepted, status, body)
	}
	c.waitEffects(t, n, 60*time.Second)
}
