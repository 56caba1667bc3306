package driver

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"sync"
	"testing"

	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
)

// The differential tests run the real Python driver's code (Debian's
// python3-oslo.messaging) and compare its answers with ours. They skip when it is not
// installed, except under CI=true, where a missing Python is a failure.

const osloPython = "/usr/bin/python3"

var osloCheck struct {
	once   sync.Once
	reason string
}

// requireOslo skips (or fails under CI) when /usr/bin/python3 cannot import
// oslo_messaging and oslo_config.
func requireOslo(t *testing.T) {
	t.Helper()
	osloCheck.once.Do(func() {
		out, err := exec.Command(osloPython, "-c", "import oslo_messaging, oslo_config").CombinedOutput()
		if err != nil {
			osloCheck.reason = "Python oslo.messaging not available (" + osloPython + `: import oslo_messaging, oslo_config): ` + err.Error() + ": " + string(bytes.TrimSpace(out))
		}
	})
	if osloCheck.reason == "" {
		return
	}
	peers.Missing(t, "%s", osloCheck.reason)
}

// runOslo runs script with input as JSON on stdin and decodes its stdout (JSON) into
// out.
func runOslo(t *testing.T, script string, input, out any) {
	t.Helper()
	requireOslo(t)
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(osloPython, "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\nstderr:\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("python output: %v\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
}
