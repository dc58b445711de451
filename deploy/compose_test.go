// Package deploy_test checks the Compose stack (docker-compose.yml at the
// repository root) and the files it mounts, without a container engine: no
// engine runs in CI, so a port that drifts, a variable Millrace does not read
// or a dashboard path that points nowhere would otherwise be found only by
// the first person to run `docker compose up`.
package deploy_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/millrace/millrace/api"
	"github.com/millrace/millrace/config"
)

// root is the repository root, seen from this package's directory.
const root = ".."

// Ports the third-party images listen on by default; the Compose file does
// not change them, so they are not written anywhere the test could read.
const (
	mailpitSMTPPort = "1025"
	prometheusPort  = "9090"
	jaegerOTLPHTTP  = "4318"
	jaegerOTLPGRPC  = "4317"
	postgresPort    = "5432"
)

// otelVariables are the OpenTelemetry variables Millrace reads
// (telemetry.TraceSettingsFromEnv) or leaves to the SDK it uses; any other
// OTEL_* name in the Compose file would be silently ignored.
var otelVariables = []string{
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
	"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_EXPORTER",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
}

// stack is everything the checks need, read once per test.
type stack struct {
	compose    composeFile
	dockerfile dockerfile
	// images are the services built from deploy/Dockerfile, by name, with
	// the configuration each would load.
	images map[string]config.Config
	// server is the one of them that runs `serve`.
	server string
}

func TestComposeFileShape(t *testing.T) {
	s := loadStack(t)
	raw := readFile(t, "docker-compose.yml")
	var top map[string]any
	if err := yaml.Unmarshal(raw, &top); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if _, ok := top["version"]; ok {
		t.Error("docker-compose.yml: drop the obsolete top-level version key")
	}
	for name, svc := range s.compose.Services {
		if svc.Build == nil && !pinned(svc.Image) {
			t.Errorf("service %s: image %q is not pinned to a version tag or digest",
				name, svc.Image)
		}
		for _, v := range svc.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if !ok {
				continue
			}
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("service %s mounts %s, which does not exist", name, src)
				}
			} else if _, ok := s.compose.Volumes[src]; !ok {
				t.Errorf("service %s uses volume %q, which the top-level volumes "+
					"key does not declare", name, src)
			}
		}
	}
}

// TestComposeVariablesAreMillraceSettings finds every MILLRACE_* and OTEL_*
// variable given to a Millrace container among those Millrace reads.
func TestComposeVariablesAreMillraceSettings(t *testing.T) {
	s := loadStack(t)
	known := map[string]bool{}
	for _, st := range config.Settings() {
		known[st.Env] = true
	}
	check := func(where string, env map[string]string) {
		for k := range env {
			switch {
			case strings.HasPrefix(k, "MILLRACE_") && !known[k]:
				t.Errorf("%s sets %s, which is not a Millrace setting (config.Settings)",
					where, k)
			case strings.HasPrefix(k, "OTEL_") && !slices.Contains(otelVariables, k):
				t.Errorf("%s sets %s, which Millrace's tracing does not read", where, k)
			}
		}
	}
	check("deploy/Dockerfile", s.dockerfile.final().env)
	for name, svc := range s.compose.Services {
		check("service "+name, svc.Environment)
	}
	if len(s.images) == 0 {
		t.Fatal("no service is built from deploy/Dockerfile")
	}
}

// TestComposeHTTPPort follows MILLRACE_HTTP_ADDR's port to everything that
// must agree with it: the published port, the health check, EXPOSE and the
// Prometheus target; and the paths they use to the routes the API serves.
func TestComposeHTTPPort(t *testing.T) {
	s := loadStack(t)
	cfg, svc := s.images[s.server], s.compose.Services[s.server]
	host, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		t.Fatalf("MILLRACE_HTTP_ADDR %q: %v", cfg.HTTPAddr, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("MILLRACE_HTTP_ADDR listens on %s only: other containers and the "+
			"published port cannot reach it; use 0.0.0.0:%s", host, port)
	}

	var published []string
	for _, p := range svc.Ports {
		published = append(published, parsePort(t, s.server, p).container)
	}
	if !slices.Contains(published, port) {
		t.Errorf("service %s publishes container port(s) %v, but MILLRACE_HTTP_ADDR "+
			"listens on %s", s.server, published, port)
	}
	if !slices.Contains(s.dockerfile.final().expose, port) {
		t.Errorf("deploy/Dockerfile EXPOSEs %v, but MILLRACE_HTTP_ADDR listens on %s",
			s.dockerfile.final().expose, port)
	}

	probe := healthURL(t, s.server, svc)
	if probe.Port() != port {
		t.Errorf("service %s health check probes port %s, but MILLRACE_HTTP_ADDR "+
			"listens on %s", s.server, probe.Port(), port)
	}

	target, metricsPath := prometheusTarget(t, s)
	if target != net.JoinHostPort(s.server, port) {
		t.Errorf("deploy/prometheus/prometheus.yml scrapes %s, but Millrace is %s",
			target, net.JoinHostPort(s.server, port))
	}

	// The paths must be routes the API answers 200 on without credentials.
	h := api.NewHandler(api.Config{Gatherer: prometheus.NewRegistry()})
	for what, p := range map[string]string{
		"the health check of service " + s.server: probe.Path,
		"deploy/prometheus/prometheus.yml":        metricsPath,
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
		if w.Code != http.StatusOK {
			t.Errorf("%s requests %s, which the API answers with %d", what, p, w.Code)
		}
	}
}

func TestComposeKafka(t *testing.T) {
	s := loadStack(t)
	cfg := s.images[s.server]
	if cfg.Transport != config.TransportKafka {
		t.Fatalf("service %s runs the %s transport; the stack is for kafka",
			s.server, cfg.Transport)
	}
	brokers := 0
	for _, svc := range s.compose.Services {
		if strings.Contains(svc.Environment["KAFKA_PROCESS_ROLES"], "broker") {
			brokers++
		}
	}
	if cfg.KafkaReplicationFactor > brokers {
		t.Errorf("MILLRACE_KAFKA_REPLICATION_FACTOR is %d, but the stack runs %d broker(s)",
			cfg.KafkaReplicationFactor, brokers)
	}
	depends := s.compose.Services[s.server].DependsOn
	for _, b := range cfg.KafkaBrokers {
		host, port, _ := net.SplitHostPort(b)
		kafka, ok := s.compose.Services[host]
		if !ok {
			t.Errorf("MILLRACE_KAFKA_BROKERS names %s, which is not a Compose service", b)
			continue
		}
		env := kafka.Environment
		advertised := listeners(env["KAFKA_ADVERTISED_LISTENERS"])
		name := ""
		for n, addr := range advertised {
			if addr == b {
				name = n
			}
		}
		if name == "" {
			t.Errorf("MILLRACE_KAFKA_BROKERS names %s, but service %s advertises %v",
				b, host, advertised)
			continue
		}
		if _, p, _ := net.SplitHostPort(listeners(env["KAFKA_LISTENERS"])[name]); p != port {
			t.Errorf("service %s advertises %s as %s but listens for it on %q",
				host, name, b, listeners(env["KAFKA_LISTENERS"])[name])
		}
		// Kafka's default is 3; more than the brokers and the offsets topic is
		// never created, so no consumer group can commit.
		offsets, err := strconv.Atoi(orDefault(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"], "3"))
		if err != nil || offsets > brokers {
			t.Errorf("service %s: KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR is %q with %d "+
				"broker(s): consumer groups could never commit offsets",
				host, env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"], brokers)
		}
		checkQuorum(t, host, env)
		tag := imageTag(kafka.Image)
		if versionLess(tag, cfg.KafkaVersion) {
			t.Errorf("MILLRACE_KAFKA_VERSION %s is above the broker's (%s)",
				cfg.KafkaVersion, kafka.Image)
		}
		if bs := argAfter(kafka.Healthcheck.test(), "--bootstrap-server"); bs != b {
			t.Errorf("service %s health check asks %q, not the listener Millrace uses (%s)",
				host, bs, b)
		}
		if depends[host].Condition != "service_healthy" {
			t.Errorf("service %s does not wait for %s to be healthy", s.server, host)
		}
	}
}

// checkQuorum matches the controller quorum to the node and its controller
// listener.
func checkQuorum(t *testing.T, service string, env map[string]string) {
	t.Helper()
	voters := env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
	want := fmt.Sprintf("%s@%s:%s", env["KAFKA_NODE_ID"], service,
		portOf(listeners(env["KAFKA_LISTENERS"])[env["KAFKA_CONTROLLER_LISTENER_NAMES"]]))
	if voters != want {
		t.Errorf("service %s: KAFKA_CONTROLLER_QUORUM_VOTERS is %q; its node id, name and "+
			"controller listener make %q", service, voters, want)
	}
}

func TestComposeDatabaseMailTracing(t *testing.T) {
	s := loadStack(t)
	var urls []string
	for name, cfg := range s.images {
		urls = append(urls, cfg.DatabaseURL)
		u, err := url.Parse(cfg.DatabaseURL)
		if err != nil {
			t.Fatalf("service %s: MILLRACE_DATABASE_URL: %v", name, err)
		}
		pg, ok := s.compose.Services[u.Hostname()]
		if !ok || !strings.HasPrefix(pg.Image, "postgres:") {
			t.Errorf("service %s: MILLRACE_DATABASE_URL names host %q, not the postgres "+
				"service", name, u.Hostname())
			continue
		}
		user := orDefault(pg.Environment["POSTGRES_USER"], "postgres")
		pass, _ := u.User.Password()
		for what, got := range map[string][2]string{
			"port":     {u.Port(), postgresPort},
			"user":     {u.User.Username(), user},
			"password": {pass, pg.Environment["POSTGRES_PASSWORD"]},
			"database": {strings.TrimPrefix(u.Path, "/"), orDefault(pg.Environment["POSTGRES_DB"], user)},
		} {
			if got[0] != got[1] {
				t.Errorf("service %s: MILLRACE_DATABASE_URL %s is %q, service %s has %q",
					name, what, got[0], u.Hostname(), got[1])
			}
		}
		if s.compose.Services[name].DependsOn[u.Hostname()].Condition != "service_healthy" {
			t.Errorf("service %s does not wait for %s to be healthy", name, u.Hostname())
		}
	}
	slices.Sort(urls)
	if len(slices.Compact(urls)) != 1 {
		t.Errorf("the Millrace services use different databases: %v", urls)
	}

	cfg := s.images[s.server]
	if !cfg.Migrate {
		job := ""
		for name, dep := range s.compose.Services[s.server].DependsOn {
			if slices.Equal(s.compose.Services[name].Command, []string{"migrate"}) &&
				dep.Condition == "service_completed_successfully" {
				job = name
			}
		}
		if job == "" {
			t.Errorf("service %s sets MILLRACE_MIGRATE=false but waits for no `millrace "+
				"migrate` job to complete", s.server)
		}
	}

	smtp, err := url.Parse(cfg.SMTPURL)
	if err != nil || cfg.SMTPURL == "" {
		t.Fatalf("service %s: MILLRACE_SMTP_URL %q: want the mailpit service", s.server,
			cfg.SMTPURL)
	}
	if mp, ok := s.compose.Services[smtp.Hostname()]; !ok ||
		!strings.HasPrefix(mp.Image, "axllent/mailpit:") || smtp.Port() != mailpitSMTPPort {
		t.Errorf("MILLRACE_SMTP_URL %s: want the mailpit service on its SMTP port %s",
			cfg.SMTPURL, mailpitSMTPPort)
	}

	tr := cfg.Tracing
	if !tr.Enabled() {
		t.Fatalf("service %s exports no traces: set OTEL_EXPORTER_OTLP_ENDPOINT", s.server)
	}
	ep, err := url.Parse(tr.Endpoint)
	if err != nil {
		t.Fatalf("OTEL_EXPORTER_OTLP_ENDPOINT %q: %v", tr.Endpoint, err)
	}
	want := map[string]string{"grpc": jaegerOTLPGRPC, "http/protobuf": jaegerOTLPHTTP}
	if j, ok := s.compose.Services[ep.Hostname()]; !ok ||
		!strings.HasPrefix(j.Image, "jaegertracing/jaeger:") || ep.Port() != want[tr.Protocol] {
		t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT %s over %s: want the jaeger service on port %s",
			tr.Endpoint, tr.Protocol, want[tr.Protocol])
	}
}

// TestComposeDependsOnHealth lets a service wait only for a health check
// that exists or a one-shot job that ends.
func TestComposeDependsOnHealth(t *testing.T) {
	s := loadStack(t)
	for name, svc := range s.compose.Services {
		for dep, d := range svc.DependsOn {
			target, ok := s.compose.Services[dep]
			switch {
			case !ok:
				t.Errorf("service %s depends on %s, which is not a service", name, dep)
			case d.Condition == "service_healthy":
				if !target.Healthcheck.defined() {
					t.Errorf("service %s waits for %s to be healthy, but %s has no "+
						"health check", name, dep, dep)
				}
			case d.Condition == "service_completed_successfully":
				if target.Restart != "" && target.Restart != "no" {
					t.Errorf("service %s waits for %s to complete, but %s restarts (%s)",
						name, dep, dep, target.Restart)
				}
			default:
				t.Errorf("service %s depends on %s with condition %q: it would start before "+
					"%s is ready; use service_healthy", name, dep, d.Condition, dep)
			}
		}
	}
}

// TestComposeShutdownAndPorts checks what a stop and the host see.
func TestComposeShutdownAndPorts(t *testing.T) {
	s := loadStack(t)
	cfg, svc := s.images[s.server], s.compose.Services[s.server]
	grace := 10 * time.Second // Docker's default
	if svc.StopGracePeriod != "" {
		d, err := time.ParseDuration(svc.StopGracePeriod)
		if err != nil {
			t.Fatalf("service %s: stop_grace_period %q: %v", s.server, svc.StopGracePeriod, err)
		}
		grace = d
	}
	if grace <= cfg.ShutdownTimeout {
		t.Errorf("service %s: stop_grace_period %s is not above MILLRACE_SHUTDOWN_TIMEOUT %s: "+
			"Docker would kill the drain", s.server, grace, cfg.ShutdownTimeout)
	}

	app, err := url.Parse(cfg.AppBaseURL)
	if err != nil {
		t.Fatalf("MILLRACE_APP_BASE_URL: %v", err)
	}
	appPort := app.Port()
	if appPort == "" {
		appPort = map[string]string{"http": "80", "https": "443"}[app.Scheme]
	}
	local := app.Hostname() == "localhost" || app.Hostname() == "127.0.0.1"
	owner := map[string]string{}
	for name, svc := range s.compose.Services {
		for _, p := range svc.Ports {
			hp := parsePort(t, name, p).host
			if hp == "" {
				continue
			}
			if other, ok := owner[hp]; ok {
				t.Errorf("services %s and %s both publish host port %s", other, name, hp)
			}
			owner[hp] = name
			if local && hp == appPort {
				t.Errorf("service %s publishes host port %s, where MILLRACE_APP_BASE_URL (%s) "+
					"expects the platform's web app", name, hp, cfg.AppBaseURL)
			}
		}
	}
}

func TestDockerfile(t *testing.T) {
	s := loadStack(t)
	final := s.dockerfile.final()
	user, _, _ := strings.Cut(final.user, ":")
	if user == "" || user == "root" || user == "0" {
		t.Errorf("deploy/Dockerfile: the final stage runs as %q; want a non-root USER",
			final.user)
	}
	if !pinned(final.from) {
		t.Errorf("deploy/Dockerfile: final base %q is not pinned", final.from)
	}
	if !slices.Equal(final.entrypoint, []string{"/millrace"}) ||
		!slices.Contains(final.copied, "/millrace") {
		t.Errorf("deploy/Dockerfile: want /millrace copied in and ENTRYPOINT [\"/millrace\"], "+
			"have %q", final.entrypoint)
	}

	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(readFile(t, "go.mod"))
	i := slices.IndexFunc(s.dockerfile.stages, func(st stage) bool {
		return strings.HasPrefix(st.from, "golang:")
	})
	if i < 0 {
		t.Fatal("deploy/Dockerfile: no golang: build stage")
	}
	builder := s.dockerfile.stages[i]
	if goVersion == nil || versionLess(imageTag(builder.from), string(goVersion[1])) {
		t.Errorf("deploy/Dockerfile: builder %q is older than go.mod's go directive",
			builder.from)
	}
	if !strings.Contains(builder.run, "CGO_ENABLED=0") || !strings.Contains(builder.run,
		"./cmd/millrace") {
		t.Error("deploy/Dockerfile: the builder must build ./cmd/millrace with CGO_ENABLED=0")
	}

	// There is no shell in the final image: every Millrace health check must
	// run a binary the image has, directly.
	for name := range s.images {
		hc := s.compose.Services[name].Healthcheck
		if !hc.defined() {
			continue
		}
		switch test := hc.test(); {
		case test[0] != "CMD":
			t.Errorf("service %s health check %q: the image has no shell; want "+
				"[\"CMD\", binary, args...]", name, test)
		case !slices.Contains(final.copied, test[1]):
			t.Errorf("service %s health check runs %s, which deploy/Dockerfile does not "+
				"copy into the image (it copies %v)", name, test[1], final.copied)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	s := loadStack(t)
	gname, grafana := serviceByImage(t, s, "grafana/grafana:")
	mounts := bindMounts(grafana)
	if src := mounts["/etc/grafana/provisioning"]; src != "deploy/grafana/provisioning" {
		t.Errorf("service %s mounts %q at /etc/grafana/provisioning, not "+
			"deploy/grafana/provisioning", gname, src)
	}

	var sources struct {
		Datasources []struct {
			Type, URL string
			IsDefault bool `yaml:"isDefault"`
		}
	}
	unmarshalYAML(t, "deploy/grafana/provisioning/datasources/prometheus.yml", &sources)
	found := false
	for _, ds := range sources.Datasources {
		if ds.Type != "prometheus" {
			continue
		}
		found = true
		u, err := url.Parse(ds.URL)
		if err != nil {
			t.Fatalf("Prometheus data source URL %q: %v", ds.URL, err)
		}
		p, ok := s.compose.Services[u.Hostname()]
		if !ok || !strings.HasPrefix(p.Image, "prom/prometheus:") || u.Port() != prometheusPort {
			t.Errorf("the Prometheus data source is %s: want the prometheus service on %s",
				ds.URL, prometheusPort)
		}
		if !ds.IsDefault {
			t.Error("the Prometheus data source must be the default: the dashboard's " +
				"data source variable starts on it")
		}
	}
	if !found {
		t.Error("no Prometheus data source is provisioned")
	}

	var dashboards struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	unmarshalYAML(t, "deploy/grafana/provisioning/dashboards/millrace.yml", &dashboards)
	if len(dashboards.Providers) != 1 || dashboards.Providers[0].Type != "file" {
		t.Fatalf("want one file dashboard provider, have %+v", dashboards.Providers)
	}
	const want = "deploy/grafana/millrace.json"
	dir := dashboards.Providers[0].Options.Path
	if got := resolve(mounts, path.Join(dir, "millrace.json")); got != want {
		t.Errorf("the dashboard provider reads %s, which service %s fills from %q, not %s",
			dir, gname, got, want)
	}
	home := grafana.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if home != "" && resolve(mounts, home) != want {
		t.Errorf("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH %s is not %s", home, want)
	}
	var dash struct{ UID string }
	if err := json.Unmarshal(readFile(t, want), &dash); err != nil || dash.UID == "" {
		t.Errorf("%s: not a dashboard with a uid (%v)", want, err)
	}
}

func TestPrometheusConfigMounted(t *testing.T) {
	s := loadStack(t)
	name, svc := serviceByImage(t, s, "prom/prometheus:")
	const file = "deploy/prometheus/prometheus.yml"
	if got := bindMounts(svc)["/etc/prometheus/prometheus.yml"]; got != file {
		t.Errorf("service %s reads its configuration from %q, not %s", name, got, file)
	}
	if probe := healthURL(t, name, svc); probe.Port() != prometheusPort {
		t.Errorf("service %s health check probes port %s, not %s", name, probe.Port(),
			prometheusPort)
	}
}

// loadStack reads and interpolates docker-compose.yml as Compose would with
// no variables set, reads the Dockerfile, and loads the configuration of
// every service built from it exactly as Millrace would inside the container.
func loadStack(t *testing.T) *stack {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(readFile(t, "docker-compose.yml"), &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	interpolate(t, &doc)
	s := &stack{images: map[string]config.Config{}}
	if err := doc.Decode(&s.compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	s.dockerfile = parseDockerfile(t, "deploy/Dockerfile")
	final := s.dockerfile.final()
	for name, svc := range s.compose.Services {
		if svc.Build == nil || path.Clean(svc.Build.Dockerfile) != "deploy/Dockerfile" {
			continue
		}
		if path.Clean(svc.Build.Context) != "." {
			t.Fatalf("service %s builds from %q; deploy/Dockerfile needs the repository root",
				name, svc.Build.Context)
		}
		env := map[string]string{}
		for k, v := range final.env {
			env[k] = v
		}
		for k, v := range svc.Environment {
			env[k] = v
		}
		lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		cfg, err := config.Load(nil, lookup)
		if err != nil {
			t.Fatalf("service %s: Millrace would refuse its environment: %v", name, err)
		}
		s.images[name] = cfg
		cmd := svc.Command
		if cmd == nil {
			cmd = final.cmd
		}
		if len(cmd) > 0 && cmd[0] == "serve" {
			if s.server != "" {
				t.Fatalf("services %s and %s both run serve", s.server, name)
			}
			s.server = name
		}
	}
	if s.server == "" {
		t.Fatal("no service built from deploy/Dockerfile runs serve")
	}
	return s
}

// composeFile is the part of the Compose format the checks read.
type composeFile struct {
	Services map[string]service
	Volumes  map[string]any
}

type service struct {
	Image           string
	Build           *struct{ Context, Dockerfile string }
	Command         []string
	Environment     environment
	DependsOn       dependsOn `yaml:"depends_on"`
	Ports           []string
	Volumes         []string
	Healthcheck     *healthcheck
	Restart         string
	StopGracePeriod string `yaml:"stop_grace_period"`
}

type healthcheck struct {
	Test    yaml.Node
	Disable bool
}

// test returns the check's command in list form: a string is CMD-SHELL.
func (h *healthcheck) test() []string {
	if h == nil {
		return nil
	}
	if h.Test.Kind == yaml.ScalarNode {
		return []string{"CMD-SHELL", h.Test.Value}
	}
	var l []string
	_ = h.Test.Decode(&l)
	return l
}

func (h *healthcheck) defined() bool {
	test := h.test()
	return h != nil && !h.Disable && len(test) > 1 && test[0] != "NONE"
}

// environment is a service's variables; the list form K=V is accepted too.
// A variable without a value is taken from the shell, which in these checks
// has none, so it is left out.
type environment map[string]string

func (e *environment) UnmarshalYAML(n *yaml.Node) error {
	*e = environment{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i < len(n.Content); i += 2 {
			if v := n.Content[i+1]; v.Tag != "!!null" {
				(*e)[n.Content[i].Value] = v.Value
			}
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			if k, v, ok := strings.Cut(item.Value, "="); ok {
				(*e)[k] = v
			}
		}
	default:
		return fmt.Errorf("line %d: environment must be a mapping or a list", n.Line)
	}
	return nil
}

// dependsOn maps a dependency to its condition; the list form means
// service_started.
type dependsOn map[string]struct{ Condition string }

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		*d = dependsOn{}
		for _, item := range n.Content {
			(*d)[item.Value] = struct{ Condition string }{"service_started"}
		}
		return nil
	}
	var m map[string]struct{ Condition string }
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		if v.Condition == "" {
			v.Condition = "service_started"
			m[k] = v
		}
	}
	*d = m
	return nil
}

var variable = regexp.MustCompile(
	`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate replaces ${VAR:-default} and ${VAR-default} by the default, as
// Compose does when VAR is unset, in every value. A variable without a default
// fails the test: the stack must come up without a .env file.
func interpolate(t *testing.T, n *yaml.Node) {
	t.Helper()
	if n.Kind == yaml.ScalarNode {
		n.Value = variable.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := variable.FindStringSubmatch(m)
			switch {
			case sub[2] == ":-" || sub[2] == "-":
				return sub[3]
			case sub[2] == ":+" || sub[2] == "+":
				return ""
			}
			t.Errorf("docker-compose.yml line %d: %s has no default (${VAR:-default})",
				n.Line, m)
			return ""
		})
	}
	for _, c := range n.Content {
		interpolate(t, c)
	}
}

// port is one published port: host may be empty (an ephemeral port).
type port struct{ host, container string }

// parsePort reads the short syntax [IP:][HOST:]CONTAINER[/PROTOCOL].
func parsePort(t *testing.T, svc, p string) port {
	t.Helper()
	spec, _, _ := strings.Cut(p, "/")
	parts := strings.Split(spec, ":")
	var out port
	switch len(parts) {
	case 1:
		out = port{container: parts[0]}
	case 2:
		out = port{host: parts[0], container: parts[1]}
	case 3:
		out = port{host: parts[1], container: parts[2]}
	default:
		t.Fatalf("service %s: port %q: want [IP:][HOST:]CONTAINER", svc, p)
	}
	return out
}

// healthURL returns the URL a service's health check requests.
func healthURL(t *testing.T, name string, svc service) *url.URL {
	t.Helper()
	for _, arg := range svc.Healthcheck.test() {
		if strings.HasPrefix(arg, "http://") {
			u, err := url.Parse(arg)
			if err != nil {
				t.Fatalf("service %s health check URL %q: %v", name, arg, err)
			}
			return u
		}
	}
	t.Fatalf("service %s: no health check requests an http:// URL", name)
	return nil
}

// prometheusTarget returns the one target that names a Compose service and
// its metrics path.
func prometheusTarget(t *testing.T, s *stack) (target, metricsPath string) {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			Scheme        string
			StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	unmarshalYAML(t, "deploy/prometheus/prometheus.yml", &cfg)
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				host, _, _ := net.SplitHostPort(tg)
				if _, ok := s.images[host]; !ok {
					continue
				}
				if sc.Scheme != "" && sc.Scheme != "http" {
					t.Errorf("job %s scrapes Millrace over %s; it serves http", sc.JobName,
						sc.Scheme)
				}
				return tg, orDefault(sc.MetricsPath, "/metrics")
			}
		}
	}
	t.Fatal("deploy/prometheus/prometheus.yml scrapes no Millrace service")
	return "", ""
}

// bindMounts maps a container path to the repository path mounted there.
func bindMounts(svc service) map[string]string {
	out := map[string]string{}
	for _, v := range svc.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], ".") {
			out[path.Clean(parts[1])] = path.Clean(parts[0])
		}
	}
	return out
}

// resolve finds the repository file behind a container path: a file mounted
// there, or a directory mounted above it.
func resolve(mounts map[string]string, p string) string {
	p = path.Clean(p)
	for dir := p; dir != "/" && dir != "."; dir = path.Dir(dir) {
		if src, ok := mounts[dir]; ok {
			return path.Join(src, strings.TrimPrefix(p, dir))
		}
	}
	return ""
}

func serviceByImage(t *testing.T, s *stack, prefix string) (string, service) {
	t.Helper()
	for name, svc := range s.compose.Services {
		if strings.HasPrefix(svc.Image, prefix) {
			return name, svc
		}
	}
	t.Fatalf("no service runs %s", prefix)
	return "", service{}
}

// listeners maps each listener name of a Kafka listener list to its host:port.
func listeners(list string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(list, ",") {
		if name, addr, ok := strings.Cut(strings.TrimSpace(l), "://"); ok {
			out[name] = addr
		}
	}
	return out
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// imageTag returns the tag of an image reference, without any variant
// suffix ("1.37.0-musl" gives "1.37.0").
func imageTag(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ""
	}
	tag, _, _ := strings.Cut(strings.TrimPrefix(ref[i+1:], "v"), "-")
	return tag
}

// pinned reports whether an image reference names a version or a digest.
func pinned(ref string) bool {
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	i := strings.LastIndex(ref, ":")
	return i >= 0 && !strings.Contains(ref[i:], "/") && ref[i+1:] != "latest"
}

// versionLess compares dotted versions numerically; missing parts are zero.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// dockerfile is the part of a Dockerfile the checks read, by stage.
type dockerfile struct{ stages []stage }

type stage struct {
	from, user, run string
	env             map[string]string
	expose, copied  []string
	entrypoint, cmd []string
}

func (d dockerfile) final() stage { return d.stages[len(d.stages)-1] }

// parseDockerfile reads FROM, USER, ENV, EXPOSE, COPY, RUN, ENTRYPOINT and
// CMD, joining continued lines. Only what this repository's Dockerfile uses
// is understood.
func parseDockerfile(t *testing.T, name string) dockerfile {
	t.Helper()
	var d dockerfile
	text := strings.ReplaceAll(string(readFile(t, name)), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, args, _ := strings.Cut(line, " ")
		instr, args = strings.ToUpper(instr), strings.TrimSpace(args)
		if instr == "FROM" {
			image, _, _ := strings.Cut(args, " ")
			d.stages = append(d.stages, stage{from: image, env: map[string]string{}})
			continue
		}
		if len(d.stages) == 0 {
			t.Fatalf("%s: %s before FROM", name, instr)
		}
		st := &d.stages[len(d.stages)-1]
		fields := strings.Fields(args)
		switch instr {
		case "USER":
			st.user = args
		case "RUN":
			st.run += args + "\n"
		case "EXPOSE":
			for _, f := range fields {
				p, _, _ := strings.Cut(f, "/")
				st.expose = append(st.expose, p)
			}
		case "ENV":
			for _, f := range fields {
				if k, v, ok := strings.Cut(f, "="); ok {
					st.env[k] = strings.Trim(v, `"`)
				}
			}
		case "COPY":
			st.copied = append(st.copied, fields[len(fields)-1])
		case "ENTRYPOINT", "CMD":
			var l []string
			if err := json.Unmarshal([]byte(args), &l); err != nil {
				t.Fatalf("%s: %s %s: want the JSON (exec) form", name, instr, args)
			}
			if instr == "CMD" {
				st.cmd = l
			} else {
				st.entrypoint = l
			}
		}
	}
	if len(d.stages) == 0 {
		t.Fatalf("%s: no FROM", name)
	}
	return d
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func unmarshalYAML(t *testing.T, name string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readFile(t, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}
