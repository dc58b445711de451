package router

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/handlers/platform"
	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store/storetest"
	"github.com/millrace/millrace/transport/memory"
)

// tunedTransport is the memory transport recording what SubscriberWith got.
type tunedTransport struct {
	*memory.Transport
	got map[string][2]any // group → concurrency, unordered
}

func (t *tunedTransport) SubscriberWith(group string, concurrency int, unordered bool) (
	message.Subscriber, error) {
	t.got[group] = [2]any{concurrency, unordered}
	return t.Subscriber(group)
}

func TestJobsGetTheirConcurrencyFromTheCatalogue(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	cat := testCatalogue(job.HandlerFunc(nil), fastRetry)
	cat.Jobs[0].Concurrency, cat.Jobs[0].Unordered = 3, true
	tr := &tunedTransport{Transport: memory.New(memory.Config{}), got: map[string][2]any{}}
	t.Cleanup(func() { tr.Close() })
	_, err := New(Config{Catalogue: cat, Deps: &Deps{Platform: platform.Deps{DB: db}},
		Transport: tr, Registry: testRegistry(t), Ledger: db})
	require.NoError(t, err)
	require.Equal(t, map[string][2]any{
		"millrace.thing":          {3, true},
		"millrace." + PoisonStore: {1, false},
	}, tr.got, "a job without a concurrency gets 1")
}
