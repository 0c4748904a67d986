// Package deploy_test checks the deployment files of deploy/: the systemd
// unit with systemd-analyze verify, the logrotate config with logrotate
// itself (a dry run of the shipped file, and a real rotation of a live
// archive), and that the environment file covers every variable the binary
// reads. Without the tools the tests skip, unless
// CAUSEWAY_REQUIRE_INTEGRATION=1 (make test), which makes a missing tool a
// failure: scripts/install-deploy-tools installs them.
package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/archive"
)

// tool returns the path of a command, looking in /usr/sbin and /sbin too
// (logrotate lives there and a non-root PATH may lack them). A missing tool
// skips the test, or fails it under CAUSEWAY_REQUIRE_INTEGRATION=1.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	msg := fmt.Sprintf("%s is not installed: run scripts/install-deploy-tools", name)
	if os.Getenv("CAUSEWAY_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// directives returns the key=value lines of a unit file, in order, values
// of repeated keys appended.
func directives(unit string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// envFile parses the example environment file: VARIABLE=value lines.
func envFile(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(read(t, "causeway.env.example")))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(k) {
			t.Fatalf("causeway.env.example:%d: not VARIABLE=value: %q", n, line)
		}
		env[k] = v
	}
	return env
}

// flagDecl matches a flag declaration of cmd/causeway: name, variable,
// default.
var flagDecl = regexp.MustCompile(`fs\.\w+Var\(&c\.\w+, "([a-z0-9-]+)", "([A-Z0-9_]*)", ([^,]+),`)

// binaryFlags returns the flags cmd/causeway declares: flag name to
// [variable, default].
func binaryFlags(t *testing.T) map[string][2]string {
	t.Helper()
	files, _ := filepath.Glob("../cmd/causeway/*.go")
	flags := map[string][2]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		for _, m := range flagDecl.FindAllStringSubmatch(read(t, f), -1) {
			flags[m[1]] = [2]string{m[2], m[3]}
		}
	}
	if len(flags) < 10 {
		t.Fatalf("found only %d flag declarations in cmd/causeway: has their form changed?", len(flags))
	}
	return flags
}

// Every variable the binary reads is in the example environment file.
func TestEnvExampleCoversTheBinary(t *testing.T) {
	env := envFile(t)
	var missing []string
	for name, f := range binaryFlags(t) {
		if f[0] != "" {
			if _, ok := env[f[0]]; !ok {
				missing = append(missing, fmt.Sprintf("%s (flag -%s)", f[0], name))
			}
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Fatalf("causeway.env.example lacks %s", strings.Join(missing, ", "))
	}
}

func TestSystemdUnit(t *testing.T) {
	unit := read(t, "causeway.service")
	d := directives(unit)
	env := envFile(t)
	want := map[string]string{
		"Restart": "on-failure", "RestartSec": "2", "EnvironmentFile": "/etc/causeway/causeway.env",
		"User": "causeway", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "KillSignal": "SIGTERM",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%v, want %s", k, got, v)
		}
	}
	rw := strings.Fields(strings.Join(d["ReadWritePaths"], " "))
	for _, dir := range []string{env["CAUSEWAY_ARCHIVE_DIR"], env["CAUSEWAY_SPILL_DIR"]} {
		if dir == "" || !slices.Contains(rw, dir) {
			t.Errorf("ReadWritePaths=%v lacks %q (from causeway.env.example)", rw, dir)
		}
	}
	if len(d["ExecStart"]) != 1 || !strings.HasPrefix(d["ExecStart"][0], "/usr/local/bin/causeway") {
		t.Errorf("ExecStart=%v", d["ExecStart"])
	}

	// The stop timeout leaves the drain its time: above the binary's
	// default -shutdown-timeout and the example's.
	stop, err := time.ParseDuration(strings.Join(d["TimeoutStopSec"], ""))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	def, ok := binaryFlags(t)["shutdown-timeout"]
	if !ok {
		t.Fatal("cmd/causeway declares no -shutdown-timeout")
	}
	drain, err := time.ParseDuration(strings.ReplaceAll(strings.ReplaceAll(def[1], "*time.Second", "s"), "*time.Minute", "m"))
	if err != nil {
		t.Fatalf("default of -shutdown-timeout %q: %v", def[1], err)
	}
	example, err := time.ParseDuration(env["CAUSEWAY_SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatalf("CAUSEWAY_SHUTDOWN_TIMEOUT: %v", err)
	}
	if stop < max(drain, example)+5*time.Second {
		t.Errorf("TimeoutStopSec=%v leaves the drain (default %v, example %v) less than 5s of margin", stop, drain, example)
	}

	analyze := tool(t, "systemd-analyze")
	// verify checks that ExecStart names an executable: point it at one
	// that exists, in a copy.
	verify := func(unit string) string {
		t.Helper()
		dir := t.TempDir()
		path := filepath.Join(dir, "causeway.service")
		unit = strings.Replace(unit, "ExecStart=/usr/local/bin/causeway", "ExecStart="+os.Args[0], 1)
		if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := verify(unit); out != "" {
		t.Fatalf("systemd-analyze verify causeway.service:\n%s", out)
	}
	// And it does find mistakes.
	if out := verify(strings.Replace(unit, "Restart=on-failure", "Restart=sometimes", 1)); !strings.Contains(out, "restart") {
		t.Fatalf("systemd-analyze verify accepted Restart=sometimes: %q", out)
	}
}

// logrotateCopy returns the shipped logrotate config rewritten for a test:
// the archive path inside dir, the owner of created files the current
// user (the causeway user need not exist here), and, if post is not empty,
// post as the postrotate command.
func logrotateCopy(t *testing.T, dir, post string) (conf, active string) {
	t.Helper()
	text := read(t, "logrotate.d/causeway")
	env := envFile(t)
	shipped := filepath.Join(env["CAUSEWAY_ARCHIVE_DIR"], env["CAUSEWAY_ARCHIVE_NAME"]+".jsonl.gz")
	if !strings.Contains(text, "\n"+shipped+" {") {
		t.Fatalf("logrotate.d/causeway does not rotate %s (CAUSEWAY_ARCHIVE_DIR/CAUSEWAY_ARCHIVE_NAME.jsonl.gz)", shipped)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	active = archive.ActivePath(filepath.Join(dir, "archive"), "")
	text = strings.Replace(text, shipped, active, 1)
	text = strings.Replace(text, "create 0640 causeway causeway", fmt.Sprintf("create 0640 %s %s", u.Username, g.Name), 1)
	if post != "" {
		text = regexp.MustCompile(`(?m)^\s*systemctl kill .*$`).ReplaceAllString(text, "        "+post)
	}
	conf = filepath.Join(dir, "logrotate.conf")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, active
}

func TestLogrotateConfig(t *testing.T) {
	text := read(t, "logrotate.d/causeway")
	var words []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" && line[0] != '#' {
			words = append(words, strings.Fields(line)[0])
		}
	}
	for _, w := range []string{"create", "nocopytruncate", "nocompress", "postrotate", "endscript"} {
		if !slices.Contains(words, w) {
			t.Errorf("logrotate.d/causeway lacks %q", w)
		}
	}
	for _, w := range []string{"copytruncate", "compress", "delaycompress", "copy"} {
		if slices.Contains(words, w) {
			t.Errorf("logrotate.d/causeway has %q", w)
		}
	}
	if !strings.Contains(text, "systemctl kill --kill-whom=main -s HUP causeway.service") {
		t.Error("postrotate does not send SIGHUP to causeway.service's main process")
	}

	lr := tool(t, "logrotate")
	dir := t.TempDir()
	conf, active := logrotateCopy(t, dir, "")
	if err := os.MkdirAll(filepath.Dir(active), 0o750); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(lr, "-d", "-f", "-s", filepath.Join(dir, "state"), conf).CombinedOutput()
	if err != nil || strings.Contains(string(out), "error:") {
		t.Fatalf("logrotate -d: %v\n%s", err, out)
	}
}

// A real logrotate run on a live archive: logrotate renames the active file
// and creates a new one, its postrotate tells the program (here: a marker
// file; in production SIGHUP), the program calls Reopen. Every line is in
// exactly one file and both files are valid gzip.
func TestLogrotateRenamesALiveArchive(t *testing.T) {
	lr := tool(t, "logrotate")
	dir := t.TempDir()
	marker := filepath.Join(dir, "signalled")
	conf, active := logrotateCopy(t, dir, "touch "+marker)
	w, err := archive.New(archive.Config[string]{Dir: filepath.Dir(active)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	write := func(from, to int) {
		t.Helper()
		msgs := make([]stages.Message[string], to-from)
		b := &stages.Batch[string]{}
		for i := range msgs {
			msgs[i].Data = fmt.Sprintf(`{"data":{"id":"%d"}}`, from+i)
			b.Messages = append(b.Messages, &msgs[i])
		}
		if err := w.HandleBatch(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 100)
	write(100, 200)
	out, err := exec.Command(lr, "-f", "-v", "-s", filepath.Join(dir, "state"), conf).CombinedOutput()
	if err != nil || strings.Contains(string(out), "error:") {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("postrotate did not run: %v\n%s", err, out)
	}
	write(200, 250) // before the signal: still into the renamed file
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	write(250, 300)
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	files, _ := filepath.Glob(filepath.Join(filepath.Dir(active), "*.gz"))
	slices.Sort(files)
	rotated := regexp.MustCompile(`^tweets-\d{8}T\d{6}\.jsonl\.gz$`)
	t.Logf("files: %v", files)
	if len(files) != 2 || !rotated.MatchString(filepath.Base(files[0])) || files[1] != active {
		t.Fatalf("files after logrotate: %v\n%s", files, out)
	}
	rep, err := archive.Verify(filepath.Dir(active), archive.VerifyOptions{IDField: "data.id"})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Lines != 300 || rep.UniqueIDs != 300 || rep.Files[0].Lines != 250 || rep.Files[1].Lines != 50 {
		t.Fatalf("verify: %+v", rep)
	}
	if gz, err := exec.LookPath("gzip"); err == nil {
		for _, f := range files {
			if out, err := exec.Command(gz, "-t", f).CombinedOutput(); err != nil {
				t.Errorf("gzip -t %s: %v %s", f, err, out)
			}
		}
	}
}
