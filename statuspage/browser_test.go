package statuspage_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
)

// chromium finds Debian's chromium (AMQP1KIT_CHROMIUM names another).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AMQP1KIT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	peers.Missing(t, "no chromium on PATH (Debian's chromium package; scripts/test.sh installs it) and AMQP1KIT_CHROMIUM unset")
	return ""
}

// artifactDir is where the test keeps what it shows: AMQP1KIT_ARTIFACTS, else a
// directory of the test's own (removed after it).
func artifactDir(t *testing.T) string {
	if d := os.Getenv("AMQP1KIT_ARTIFACTS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

// TestPageInBrowser loads the page in headless Chromium and watches it follow the
// fakes without a reload: a link attached after the page loaded shows, and a queue's
// depth goes from 0 to 3 and back to 0.
func TestPageInBrowser(t *testing.T) {
	exe := chromium(t)
	f := newFakes(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("no-proxy-server", true), // the page is on 127.0.0.1
		chromedp.WindowSize(1400, 1800),
	)...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	// The page polls every 200 ms here (1 s by default).
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(f.srv.URL+"/?interval=200"),
		chromedp.WaitVisible(chromedp.CSS("#router-links tr")),
		chromedp.WaitVisible(chromedp.CSS("#broker-queues tr")),
	))
	// A mark a reload would wipe out.
	_, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.loadedOnce = true`))
	require.NoError(t, err)

	// waitPage polls an expression in the page until it is true.
	waitPage := func(what, expr string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			ok, err := chromedp.Run(bctx, chromedp.Evaluate[bool](expr))
			require.NoError(t, err)
			if ok {
				return
			}
			if time.Now().After(deadline) {
				text, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
				t.Fatalf("the page never showed %s; it shows:\n%s", what, text)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cell := func(table, row, col string) string {
		return `(document.querySelector('#` + table + ` tr[data-name="` + row + `"] td[data-col="` + col + `"]') || {}).textContent`
	}

	// A receiver attached after the page loaded.
	sctx, cancelAMQP := context.WithTimeout(ctx, time.Minute)
	defer cancelAMQP()
	rsess := session(t, sctx, f.router.URL(), "browser-test-client")
	_, err = rsess.NewReceiver(sctx, "browser.test.address", &amqp.ReceiverOptions{Name: "browser-test-link"})
	require.NoError(t, err)
	waitPage("the link browser-test-link", `[...document.querySelectorAll('#router-links td[data-col="Name"]')].some(td => td.textContent === "browser-test-link")`)
	waitPage("the address's consumer", cell("router-addresses", "browser.test.address", "Consumers")+` === "1"`)

	// Three messages into a broker queue: its depth shows 3.
	const q = "unicast.browser.test"
	bsess := session(t, sctx, f.broker.URL(), "browser-test-notifier")
	snd, err := bsess.NewSender(sctx, q, nil)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, snd.Send(sctx, amqp.NewMessage([]byte("m")), nil))
	}
	waitPage("depth 3 on "+q, cell("broker-queues", q, "Depth")+` === "3"`)
	waitPage("enqueued 3 on "+q, cell("broker-queues", q, "Enqueued")+` === "3"`)

	dir := artifactDir(t)
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	shot := filepath.Join(dir, "statuspage.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot of the page with depth 3: %s", shot)

	// A consumer takes them: the depth goes back to 0, still without a reload.
	rcv, err := bsess.NewReceiver(sctx, q, &amqp.ReceiverOptions{Credit: 3})
	require.NoError(t, err)
	for range 3 {
		m, err := rcv.Receive(sctx, nil)
		require.NoError(t, err)
		require.NoError(t, rcv.AcceptMessage(sctx, m))
	}
	waitPage("depth 0 and dequeued 3 on "+q, cell("broker-queues", q, "Depth")+` === "0" && `+cell("broker-queues", q, "Dequeued")+` === "3"`)
	loadedOnce, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.loadedOnce === true`))
	require.NoError(t, err)
	require.True(t, loadedOnce, "the page reloaded")

	png, err = chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	shot = filepath.Join(dir, "statuspage-after.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot after the consumer took them: %s", shot)
}
