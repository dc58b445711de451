package cron

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store/storetest"
)

func TestNewTickerRejectsBadConfig(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	good := Schedule{Name: "auditCleanup", Topic: auditTopic, Spec: "30 3 * * *"}
	named := func(name, topic, spec string) Schedule {
		return Schedule{Name: name, Topic: topic, Spec: spec}
	}

	tests := []struct {
		name  string
		cfg   Config
		wants []string
		is    error
	}{
		{"no database", Config{Schedules: []Schedule{good}}, []string{"DB is required"}, nil},
		{"duplicate name", Config{DB: db, Schedules: []Schedule{good, good}},
			[]string{`schedule "auditCleanup": name is used twice`}, nil},
		{"invalid spec", Config{DB: db, Schedules: []Schedule{
			named("a", auditTopic, "61 * * * *")}},
			[]string{`schedule "a"`, `spec "61 * * * *"`}, nil},
		{"unknown time zone", Config{DB: db, Schedules: []Schedule{
			named("a", auditTopic, "CRON_TZ=Europe/Londres 30 3 * * *")}},
			[]string{`schedule "a"`, `unknown time zone "Europe/Londres"`}, nil},
		{"topic without schema", Config{DB: db, Schedules: []Schedule{
			named("a", "platform.nothing.tick", "30 3 * * *")}},
			[]string{`schedule "a": topic "platform.nothing.tick" cannot carry ticks`},
			schemas.ErrUnknownTopic},
		{"topic that is not a tick", Config{DB: db, Schedules: []Schedule{
			named("a", "platform.user.invited", "30 3 * * *")}},
			[]string{`schedule "a": topic "platform.user.invited" cannot carry ticks`}, nil},
		{"negative interval", Config{DB: db, Interval: -time.Second},
			[]string{"interval -1s is negative"}, nil},
		{"grace shorter than interval", Config{DB: db, Interval: time.Minute, Grace: time.Second},
			[]string{"grace 1s is shorter than interval 1m0s"}, nil},
		{"every problem at once", Config{Schedules: []Schedule{
			named("a", auditTopic, "61 * * * *"), named("b", "", "30 3 * * *"), good}},
			[]string{"DB is required", `schedule "a"`, `schedule "b": topic is empty`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tk, err := NewTicker(tt.cfg)
			require.Nil(t, tk)
			require.ErrorContains(t, err, "invalid cron config")
			for _, want := range tt.wants {
				require.ErrorContains(t, err, want)
			}
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
		})
	}
	require.Zero(t, countRows(t, db, "cron_slots"))
}

func TestNewTickerDefaults(t *testing.T) {
	t.Parallel()
	tk, err := NewTicker(Config{DB: storetest.New(t), Schedules: []Schedule{
		{Name: "auditCleanup", Topic: auditTopic, Spec: "30 3 * * *"}}})

	require.NoError(t, err)
	require.Equal(t, London, tk.schedules[0].loc)
	require.NotEmpty(t, tk.instance)
	require.Equal(t, DefaultInterval, tk.interval)
	require.Equal(t, DefaultGrace, tk.grace)
	require.Equal(t, CatchUpFireOnce, tk.schedules[0].policy())
}
