package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/webhooks"
	"github.com/millrace/millrace/router"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/demo"
)

func migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := loadEnv(cmd)
			if err != nil {
				return err
			}
			db, err := e.openStore(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer db.Close()
			n, err := db.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied %d migration(s)\n", n)
			return nil
		},
	}
}

// demoSecret is the demo endpoint's signing secret, printed for trying
// signature checks; it protects nothing.
const demoSecret = "whsec_ZGVtby1zaWduaW5nLXNlY3JldC1mb3ItbWlsbHJhY2U="

func demoCommand() *cobra.Command {
	var asJSON, ifEmpty bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Load a small demo agency (idempotent) and print its rows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := loadEnv(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			db, err := e.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer db.Close()
			if empty, err := demo.IsEmpty(ctx, db); err != nil || (ifEmpty && !empty) {
				return err
			}
			sealed, err := webhooks.SealSecret(e.cfg.SecretKey, demoSecret)
			if err != nil {
				return err
			}
			rows, err := demo.Load(ctx, db, time.Now(), sealed)
			if err != nil {
				return err
			}
			return printDemo(cmd, rows, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the rows as JSON")
	cmd.Flags().BoolVar(&ifEmpty, "if-empty", false, "load only into an empty database")
	return cmd
}

func printDemo(cmd *cobra.Command, rows []demo.Row, asJSON bool) error {
	out := cmd.OutOrStdout()
	if asJSON {
		return json.NewEncoder(out).Encode(map[string]any{"rows": rows})
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TABLE\tID\tWHAT\tSTATUS")
	for _, r := range rows {
		status := "existed"
		if r.New {
			status = "created"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Table, r.ID, r.What, status)
	}
	return w.Flush()
}

func publishCommand() *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "publish TOPIC JSON|@FILE",
		Short: "Validate an event and queue it for the running service (through the outbox)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := loadEnv(cmd)
			if err != nil {
				return err
			}
			topic, payload := args[0], []byte(args[1])
			if name, ok := strings.CutPrefix(args[1], "@"); ok {
				if payload, err = os.ReadFile(name); err != nil {
					return err
				}
			}
			if !router.Default().Ingestible(topic) {
				return fmt.Errorf("%w: %q", schemas.ErrUnknownTopic, topic)
			}
			if err := schemas.Default().Validate(topic, payload); err != nil {
				return err
			}
			ctx := cmd.Context()
			db, err := e.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer db.Close()
			id := ""
			if key != "" {
				id = job.StableID("ingest", topic, key)
			}
			ev := job.NewEvent(ctx, id, topic, payload, "cli", time.Now())
			err = db.InTx(ctx, func(tx *store.Tx) error { return tx.Enqueue(ctx, ev) })
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "queued %s on %s\n", ev.ID, topic)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "idempotency-key", "", "derive a stable message id from this key")
	return cmd
}
