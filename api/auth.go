package api

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// requireAPIAuth checks the ingest bearer token. Without a configured token
// only loopback callers are served, so a fresh install is never open to its
// network.
func (cfg Config) requireAPIAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cfg.APIToken == "" {
			if !fromLoopback(r) {
				writeProblem(w, http.StatusUnauthorized, Problem{
					Error: "no API token is configured, so only loopback callers are served"})
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if !bearerMatches(r, cfg.APIToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="millrace"`)
			writeProblem(w, http.StatusUnauthorized, Problem{Error: "missing or wrong bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (cfg Config) requireAdminAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bearerMatches(r, cfg.AdminToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="millrace-admin"`)
			writeProblem(w, http.StatusUnauthorized, Problem{Error: "missing or wrong admin token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func bearerMatches(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
