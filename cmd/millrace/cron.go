package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/router"
	"github.com/millrace/millrace/store"
)

func cronCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cron",
		Short: "List schedules or trigger one by hand",
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List schedules with their last and next runs",
		Args:  cobra.NoArgs,
		RunE: withStore(func(cmd *cobra.Command, db *store.DB, _ []string) error {
			e, err := loadEnv(cmd)
			if err != nil {
				return err
			}
			t, err := e.ticker(db, router.Default(), nil)
			if err != nil {
				return err
			}
			sts, err := t.List(cmd.Context(), time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"schedules": sts})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tTOPIC\tSPEC\tCATCH-UP\tLAST\tNEXT")
			for _, s := range sts {
				last := time.Time{}
				if s.Last != nil {
					last = s.Last.ScheduledFor
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Topic, s.Spec, s.CatchUp,
					fmtTime(last, e.cfg.Timezone), fmtTime(s.Next, e.cfg.Timezone))
			}
			return w.Flush()
		}),
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	trigger := &cobra.Command{
		Use:   "trigger NAME",
		Short: "Fire a schedule's tick now; the running service handles it",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(cmd *cobra.Command, db *store.DB, args []string) error {
			e, err := loadEnv(cmd)
			if err != nil {
				return err
			}
			t, err := e.ticker(db, router.Default(), nil)
			if err != nil {
				return err
			}
			slot, err := t.Trigger(cmd.Context(), args[0], time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "triggered %s for %s\n", args[0],
				slot.ScheduledFor.Format(time.RFC3339))
			return nil
		}),
	}
	cmd.AddCommand(list, trigger)
	return cmd
}

func fmtTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}
