package router

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/cron"
	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/schemas"
)

type fakeTopics []string

func (f fakeTopics) Topics() []string { return f }
func (f fakeTopics) Has(t string) bool {
	for _, x := range f {
		if x == t {
			return true
		}
	}
	return false
}

func noop(*Deps) job.Handler {
	return job.HandlerFunc(func(context.Context, job.Message) error { return nil })
}

func TestCheckRefusesEachMismatch(t *testing.T) {
	t.Parallel()
	sub := func(topic, handler string) Subscription {
		return Subscription{Topic: topic, Handler: handler, New: noop}
	}
	base := fakeTopics{"a.x.happened", "a.y.tick"}
	good := Catalogue{
		Jobs: []Job{{Name: "x", Subscriptions: []Subscription{sub("a.x.happened", "x"),
			sub("a.y.tick", "y")}}},
		Schedules: []cron.Schedule{{Name: "y", Topic: "a.y.tick", Spec: "* * * * *"}},
	}
	require.NoError(t, good.Check(base))

	cases := []struct {
		name   string
		topics fakeTopics
		edit   func(c *Catalogue)
		want   error
		names  string
	}{
		{"schema without handler", append(base, "a.z.happened"), func(*Catalogue) {},
			ErrSchemaWithoutHandler, "a.z.happened"},
		{"handler without schema", base, func(c *Catalogue) {
			c.Jobs[0].Subscriptions = append(c.Jobs[0].Subscriptions, sub("a.q.happened", "q"))
		}, ErrHandlerWithoutSchema, "a.q.happened"},
		{"emit without schema", base, func(c *Catalogue) {
			c.Jobs[0].Emits = []string{"a.e.happened"}
		}, ErrEmitWithoutSchema, "a.e.happened"},
		{"schedule names unknown topic", base, func(c *Catalogue) {
			c.Schedules = append(c.Schedules, cron.Schedule{Name: "w", Topic: "a.w.tick"})
		}, ErrScheduleUnknownTopic, "a.w.tick"},
		{"schedule without handler", append(base, "a.v.tick"), func(c *Catalogue) {
			c.Schedules = append(c.Schedules, cron.Schedule{Name: "v", Topic: "a.v.tick"})
		}, ErrScheduleWithoutHandler, "a.v.tick"},
		{"tick without schedule", base, func(c *Catalogue) { c.Schedules = nil },
			ErrTickWithoutSchedule, "a.y.tick"},
		{"duplicate handler", base, func(c *Catalogue) {
			c.Jobs = append(c.Jobs, Job{Name: "x2",
				Subscriptions: []Subscription{sub("a.x.happened", "x")}})
		}, ErrDuplicateHandler, "x"},
		{"job without handler func", base, func(c *Catalogue) {
			c.Jobs[0].Subscriptions[0].New = nil
		}, ErrIncompleteJob, "a.x.happened"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Catalogue{Jobs: []Job{{Name: "x", Subscriptions: []Subscription{
				sub("a.x.happened", "x"), sub("a.y.tick", "y")}}},
				Schedules: []cron.Schedule{{Name: "y", Topic: "a.y.tick", Spec: "* * * * *"}}}
			tc.edit(&c)
			err := c.Check(tc.topics)
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.names)
		})
	}
}

func TestDefaultCatalogueMatchesSchemas(t *testing.T) {
	t.Parallel()
	require.NoError(t, Default().Check(schemas.Default()))
}

func TestNewRefusesMismatchedCatalogue(t *testing.T) {
	t.Parallel()
	c := Catalogue{Jobs: []Job{{Name: "x", Subscriptions: []Subscription{
		{Topic: "nowhere.at.all", Handler: "x", New: noop}}}}}
	_, err := New(Config{Catalogue: c, Registry: schemas.Default()})
	require.ErrorIs(t, err, ErrHandlerWithoutSchema)
	require.ErrorIs(t, err, ErrSchemaWithoutHandler)
	require.Contains(t, err.Error(), "nowhere.at.all")
}
