package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/store"
)

func poisonCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "poison",
		Short: "List, inspect, replay or discard poisoned messages",
	}
	var status string
	var limit int
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List poisoned messages, newest first",
		Args:  cobra.NoArgs,
		RunE: withStore(func(cmd *cobra.Command, db *store.DB, _ []string) error {
			recs, err := db.ListPoison(cmd.Context(), status, limit)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"poison": recs})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSTATUS\tTOPIC\tHANDLER\tCLASS\tATTEMPTS\tPOISONED AT\tREASON")
			for _, r := range recs {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%.60s\n", r.ID, r.Status, r.Topic,
					r.Handler, r.ErrorClass, r.Attempts, r.PoisonedAt.Format(time.RFC3339), r.Reason)
			}
			return w.Flush()
		}),
	}
	list.Flags().StringVar(&status, "status", "open", "open, replayed, discarded, or empty for all")
	list.Flags().IntVar(&limit, "limit", 100, "how many to list")
	list.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one poisoned message with its payload and metadata",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(cmd *cobra.Command, db *store.DB, args []string) error {
			rec, err := db.GetPoison(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(rec)
		}),
	}
	replay := &cobra.Command{
		Use:   "replay ID",
		Short: "Put a poisoned message back on its topic, with its original id",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(cmd *cobra.Command, db *store.DB, args []string) error {
			rec, err := db.ReplayPoison(cmd.Context(), args[0], time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replayed message %s to %s\n", rec.MessageID, rec.Topic)
			return nil
		}),
	}
	discard := &cobra.Command{
		Use:   "discard ID",
		Short: "Mark a poisoned message as dealt with; it is kept for the record",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(cmd *cobra.Command, db *store.DB, args []string) error {
			if err := db.DiscardPoison(cmd.Context(), args[0], time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "discarded %s\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(list, show, replay, discard)
	return cmd
}

// withStore runs fn with the configured, migrated database.
func withStore(fn func(*cobra.Command, *store.DB, []string) error) func(*cobra.Command,
	[]string) error {
	return func(cmd *cobra.Command, args []string) error {
		e, err := loadEnv(cmd)
		if err != nil {
			return err
		}
		db, err := e.openStore(cmd.Context(), true)
		if err != nil {
			return err
		}
		defer db.Close()
		return fn(cmd, db, args)
	}
}
