package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store/demo"
)

func deliveryRequest(attempt int) string {
	return fmt.Sprintf(`{"delivery_id":"%s","endpoint_id":"%s","event_id":"%s",`+
		`"event_type":"tenancy.created","organisation_id":"%s","attempt":%d}`,
		demo.DeliveryID, demo.EndpointID, demo.EventID, demo.OrganisationID, attempt)
}

// TestServeDrainsOnSIGTERMOnPostgres stops `millrace serve` while a webhook
// delivery is in flight: the delivery finishes and is acked, the message
// queued behind it is left for the next start, and nothing is sent twice.
func TestServeDrainsOnSIGTERMOnPostgres(t *testing.T) {
	c := newPGCluster(t)
	ctx := context.Background()
	var hits atomic.Int32
	arrived, release := make(chan struct{}, 4), make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	_, err := c.db.ExecContext(ctx, `UPDATE webhook_endpoints SET url = $1 WHERE id = $2`,
		hook.URL+"/hook", demo.EndpointID)
	require.NoError(t, err)
	in := c.replica(t, "draining")
	in.env = append(in.env, "MILLRACE_WEBHOOK_ALLOW_PRIVATE=true",
		"MILLRACE_SHUTDOWN_TIMEOUT=20s")
	cmd, _ := in.serve(t)

	status, body := in.post(t, "platform.webhook.delivery.requested", deliveryRequest(1))
	require.Equal(t, http.StatusAccepted, status, body)
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the delivery never reached the endpoint")
	}
	status, body = in.post(t, "platform.webhook.delivery.requested", deliveryRequest(2))
	require.Equal(t, http.StatusAccepted, status, body)
	var waiting struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(body), &waiting))

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { return in.readyz() == 0 }, 10*time.Second,
		10*time.Millisecond, "serve kept listening after SIGTERM")
	close(release)
	require.NoError(t, waitExit(t, cmd), "serve did not drain cleanly")

	var left string
	var claimed *string
	require.NoError(t, c.db.QueryRowContext(ctx, "SELECT uuid, claimed_by FROM millrace_queue").
		Scan(&left, &claimed))
	require.Equal(t, waiting.ID, left, "only the waiting message is left: the other's ack is kept")
	require.Nil(t, claimed, "the waiting message was not taken after SIGTERM")
	var deliveryStatus string
	require.NoError(t, c.db.QueryRowContext(ctx, `SELECT status FROM webhook_deliveries
		WHERE id = $1`, demo.DeliveryID).Scan(&deliveryStatus))
	require.Equal(t, "succeeded", deliveryStatus)

	in.serve(t)
	require.Eventually(t, func() bool {
		var n int
		err := c.db.QueryRowContext(ctx, "SELECT count(*) FROM millrace_queue").Scan(&n)
		return err == nil && n == 0
	}, 20*time.Second, 50*time.Millisecond, "the waiting message was never handled")
	require.Equal(t, int32(1), hits.Load(), "the drained delivery was not sent again")
}
