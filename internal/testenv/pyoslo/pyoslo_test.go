package pyoslo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/testenv/protonbroker"
)

// The tests run the real Python driver against Qpid Proton's C++ example broker, which
// stores messages (so a listener started after the notifier still gets the notification)
// and supports the dynamic reply source the driver needs.

// startBroker starts a Proton C++ example broker on a free loopback port and returns its
// URL; t.Cleanup stops it, after logging its output if the test failed.
func startBroker(t *testing.T) string {
	t.Helper()
	Require(t)
	var mu sync.Mutex
	var output []string
	// Registered before the broker's own cleanup, so it runs after it: all the output is in.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() && len(output) > 0 {
			t.Logf("proton broker output:\n%s", strings.Join(output, "\n"))
		}
	})
	return protonbroker.StartT(t, &protonbroker.Options{Output: func(line string) {
		mu.Lock()
		defer mu.Unlock()
		output = append(output, line)
	}}).URL()
}

func uniqueTopic(t *testing.T) string {
	return fmt.Sprintf("%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
}

func only(t *testing.T, lines []map[string]any) map[string]any {
	t.Helper()
	if len(lines) != 1 {
		t.Fatalf("want exactly one output line, got %d: %v", len(lines), lines)
	}
	return lines[0]
}

func errorOf(t *testing.T, line map[string]any) map[string]any {
	t.Helper()
	e, ok := line["error"].(map[string]any)
	if !ok {
		t.Fatalf("want an error, got %v", line)
	}
	return e
}

func TestPythonMissingInterpreter(t *testing.T) {
	t.Setenv(EnvPython, filepath.Join(t.TempDir(), "no-such-python"))
	_, err := Python()
	if err == nil || !strings.Contains(err.Error(), "no-such-python") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("want an error naming the missing interpreter, got %v", err)
	}
}

func TestPythonMissingModules(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "python3")
	script := "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'pyngus'\" >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvPython, fake)
	_, err := Python()
	if err == nil || !strings.Contains(err.Error(), "No module named 'pyngus'") ||
		!strings.Contains(err.Error(), "import oslo_messaging, pyngus, proton") {
		t.Fatalf("want an error naming the failed import, got %v", err)
	}
}

func TestScriptFound(t *testing.T) {
	p, err := Script()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(filepath.ToSlash(p), ScriptPath) {
		t.Fatalf("Script() = %s", p)
	}
}

func TestSelftest(t *testing.T) {
	t.Parallel()
	url := startBroker(t)
	lines := Run(t, "selftest", "--url", url, "--timeout", "30")
	if len(lines) == 0 {
		t.Fatal("no output")
	}
	last := lines[len(lines)-1]
	if last["event"] != "selftest" || last["ok"] != true {
		t.Fatalf("selftest: %v", last)
	}
	checks, _ := last["checks"].(map[string]any)
	for _, name := range []string{"echo", "remote_valueerror", "remote_customerror", "server_call", "cast", "fanout", "call_timeout", "notification"} {
		if checks[name] != true {
			t.Errorf("check %s: %v", name, checks[name])
		}
	}
}

func TestRPCAcrossProcesses(t *testing.T) {
	t.Parallel()
	url := startBroker(t)
	topic := uniqueTopic(t)
	srv := Start(t, "rpc-server", "--url", url, "--topic", topic, "--server", "s1", "--timeout", "60")
	if _, err := srv.WaitEvent("ready", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Every rpc-call is a separate process, as separate services are.
	t.Run("group", func(t *testing.T) {
		t.Run("echo", func(t *testing.T) {
			t.Parallel()
			got := only(t, Run(t, "rpc-call", "--url", url, "--topic", topic, "--server", "s1",
				"--method", "echo", "--args", `{"a": 1, "b": [true, null], "c": "x"}`, "--timeout", "20"))
			res, _ := got["result"].(map[string]any)
			if res == nil || res["a"] != float64(1) || fmt.Sprint(res["b"]) != "[true <nil>]" || res["c"] != "x" {
				t.Fatalf("echo: %v", got)
			}
		})
		t.Run("fail", func(t *testing.T) {
			t.Parallel()
			got := only(t, Run(t, "rpc-call", "--url", url, "--topic", topic, "--method", "fail",
				"--args", `{"message": "it failed on purpose"}`, "--timeout", "20"))
			e := errorOf(t, got)
			// A builtin exception keeps its class (oslo cannot swap in ValueError_Remote); the
			// message carries the remote traceback after the text.
			if e["class"] != "ValueError" || e["module"] != "builtins" ||
				!strings.HasPrefix(fmt.Sprint(e["message"]), "it failed on purpose\n") {
				t.Fatalf("fail: %v", e)
			}
		})
		t.Run("boom", func(t *testing.T) {
			t.Parallel()
			got := only(t, Run(t, "rpc-call", "--url", url, "--topic", topic, "--method", "boom",
				"--args", `{"message": "custom"}`, "--timeout", "20"))
			e := errorOf(t, got)
			// Not in allowed_remote_exmods: the caller gets oslo_messaging.RemoteError.
			if e["class"] != "RemoteError" || e["exc_type"] != "CustomError" || e["value"] != "custom" {
				t.Fatalf("boom: %v", e)
			}
		})
	})
	if err := srv.Stop(); err != nil {
		t.Fatalf("stopping the server: %v", err)
	}
	lines, _ := srv.Wait(time.Second)
	calls := map[string]int{}
	var stopped map[string]any
	for _, l := range lines {
		switch l["event"] {
		case "call":
			calls[fmt.Sprint(l["method"])]++
		case "stopped":
			stopped = l
		}
	}
	if calls["echo"] != 1 || calls["fail"] != 1 || calls["boom"] != 1 {
		t.Errorf("server saw calls %v", calls)
	}
	if stopped == nil || stopped["reason"] != "stdin" || stopped["handled"] != float64(3) {
		t.Errorf("server stop line: %v", stopped)
	}
}

func TestNotifyThenListen(t *testing.T) {
	t.Parallel()
	url := startBroker(t)
	topic := uniqueTopic(t)
	sent := only(t, Run(t, "notify", "--url", url, "--topic", topic, "--priority", "info",
		"--event-type", "compute.instance.create.end", "--payload", `{"id": "vm-1", "n": 2}`,
		"--publisher-id", "compute.host1", "--timeout", "20"))
	if sent["event"] != "notified" || sent["error"] != nil {
		t.Fatalf("notify: %v", sent)
	}
	// The listener starts after the notification was sent: the broker stored it.
	lines := Run(t, "listen", "--url", url, "--topic", topic, "--priorities", "info",
		"--count", "1", "--timeout", "20")
	var got map[string]any
	for _, l := range lines {
		if l["event"] == "notification" {
			got = l
		}
	}
	if got == nil {
		t.Fatalf("no notification in %v", lines)
	}
	payload, _ := got["payload"].(map[string]any)
	if got["priority"] != "info" || got["event_type"] != "compute.instance.create.end" ||
		got["publisher_id"] != "compute.host1" || payload["id"] != "vm-1" || payload["n"] != float64(2) {
		t.Fatalf("notification: %v", got)
	}
}

func TestCallTimeout(t *testing.T) {
	t.Parallel()
	url := startBroker(t)
	got := only(t, Run(t, "rpc-call", "--url", url, "--topic", uniqueTopic(t), "--method", "echo",
		"--call-timeout", "2", "--timeout", "20"))
	e := errorOf(t, got)
	if e["class"] != "MessagingTimeout" || e["module"] != "oslo_messaging.exceptions" {
		t.Fatalf("want MessagingTimeout, got %v", e)
	}
	// The driver's timers round up to whole seconds: 2 s becomes 2 to 3 s.
	elapsed, _ := got["elapsed"].(float64)
	if elapsed < 1.9 || elapsed > 5.5 {
		t.Fatalf("MessagingTimeout after %.3fs, want about 2-5 s", elapsed)
	}
}

func TestUsageErrorAndEOF(t *testing.T) {
	t.Parallel()
	p := Start(t, "rpc-server", "--url", "amqp://127.0.0.1:1", "--topic", "x") // no --server
	_, err := p.Next(30 * time.Second)
	if !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "exit status 2") ||
		!strings.Contains(err.Error(), "the following arguments are required: --server") {
		t.Fatalf("Next: want EOF with the exit status and the usage message, got %v", err)
	}
	if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("Stop: want the exit status, got %v", err)
	}
}
