package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/millrace/millrace/store"
)

// adminRoutes serves the poison queue to operators as JSON.
func adminRoutes(r chi.Router, cfg Config) {
	r.Get("/poison", func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit <= 0 || limit > 1000 {
			limit = 100
		}
		recs, err := cfg.DB.ListPoison(r.Context(), r.URL.Query().Get("status"), limit)
		if err != nil {
			writeProblem(w, http.StatusInternalServerError, Problem{Error: "cannot list poison"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"poison": recs})
	})
	r.Get("/poison/{id}", func(w http.ResponseWriter, r *http.Request) {
		rec, err := cfg.DB.GetPoison(r.Context(), chi.URLParam(r, "id"))
		if writeStoreError(w, err) {
			return
		}
		writeJSON(w, http.StatusOK, rec)
	})
	r.Post("/poison/{id}/replay", func(w http.ResponseWriter, r *http.Request) {
		rec, err := cfg.DB.ReplayPoison(r.Context(), chi.URLParam(r, "id"), cfg.Now())
		if writeStoreError(w, err) {
			return
		}
		writeJSON(w, http.StatusOK, rec)
	})
	r.Post("/poison/{id}/discard", func(w http.ResponseWriter, r *http.Request) {
		err := cfg.DB.DiscardPoison(r.Context(), chi.URLParam(r, "id"), cfg.Now())
		if writeStoreError(w, err) {
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": store.PoisonDiscarded})
	})
}

func writeStoreError(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, store.ErrPoisonNotFound):
		writeProblem(w, http.StatusNotFound, Problem{Error: err.Error()})
	default:
		writeProblem(w, http.StatusConflict, Problem{Error: err.Error()})
	}
	return true
}
