package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/router"
	"github.com/millrace/millrace/schemas"
)

// topicRow is one line of `millrace topics`.
type topicRow struct {
	Topic    string   `json:"topic"`
	Kind     string   `json:"kind"`
	Handlers []string `json:"handlers,omitempty"`
	Groups   []string `json:"consumer_groups,omitempty"`
	Emitters []string `json:"emitted_by,omitempty"`
	Schedule string   `json:"schedule,omitempty"`
	Retry    string   `json:"retry,omitempty"`
}

func topicsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Print the catalogue: every topic, its handlers, groups, retry and schedule",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows := catalogueRows(router.Default(), schemas.Default())
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"topics": rows})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tKIND\tHANDLERS\tEMITTED BY\tSCHEDULE\tRETRY")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Topic, r.Kind,
					dash(strings.Join(r.Handlers, ",")), dash(strings.Join(r.Emitters, ",")),
					dash(r.Schedule), dash(r.Retry))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func catalogueRows(cat router.Catalogue, reg *schemas.Registry) []topicRow {
	rows := map[string]*topicRow{}
	for _, t := range reg.Topics() {
		rows[t] = &topicRow{Topic: t, Kind: "event"}
	}
	for _, j := range cat.Jobs {
		for _, s := range j.Subscriptions {
			r := rows[s.Topic]
			r.Handlers = append(r.Handlers, s.Handler)
			r.Groups = append(r.Groups, s.Group())
			p := j.Retry
			if p.MaxRetries == 0 {
				p.MaxRetries = 5
			}
			r.Retry = fmt.Sprintf("%d retries", p.MaxRetries)
			if j.Kind == router.KindSystem {
				r.Kind, r.Retry = "system", "nack"
			}
		}
		for _, t := range j.Emits {
			rows[t].Emitters = append(rows[t].Emitters, j.Name)
		}
	}
	for _, s := range cat.Schedules {
		rows[s.Topic].Kind = "cron"
		rows[s.Topic].Schedule = s.Spec + " (" + string(s.CatchUp) + ")"
	}
	out := make([]topicRow, 0, len(rows))
	for _, t := range reg.Topics() {
		r := rows[t]
		if len(r.Handlers) == 0 {
			r.Kind = "emitted"
		}
		out = append(out, *r)
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
