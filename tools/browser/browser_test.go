package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// Bounds on the waits. They are generous where the test only waits for
// something to happen; pageBound is the figure the test checks.
const (
	startTimeout = 60 * time.Second // Chromium and the agent start, the members meet
	exitTimeout  = 10 * time.Second
	// leaveTimeout bounds the wait for a member killed with kill -9 to
	// leave the open page: pir's failure detection (about 2 s with the
	// defaults, 1.4-2.9 s beside two CPU burners) and the page's part.
	leaveTimeout = 30 * time.Second
	// pageBound bounds the page's part: from the agent printing the left
	// event to the member's disappearance from the open page.
	pageBound = time.Second
)

// helperEnv makes the test binary run the forger (see forger) instead of
// the tests.
const helperEnv = "PIR_BROWSER_HELPER"

// Set by TestMain: the pir and pir-agent binaries, the browser, or why a
// test must skip.
var pirPath, agentPath, chromiumPath, skipReason string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(forger(os.Args[1:]))
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if ok, reason := nslan.Available(); !ok {
		skipReason = "no network lab here: " + reason
		return m.Run()
	}
	if chromiumPath = findChromium(); chromiumPath == "" {
		skipReason = "Chromium is not installed (Debian: apt-get install chromium; test.sh installs it), or set PIR_CHROMIUM"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "pir-browser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := pircli.ModuleRoot("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if pirPath, err = pircli.Build(ctx, root, dir, raceEnabled); err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		return 1
	}
	if agentPath, err = pircli.BuildAgent(ctx, root, dir, raceEnabled); err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		return 1
	}
	return m.Run()
}

// jsString returns s as a JavaScript string literal.
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}

// findChromium returns the path of the browser: $PIR_CHROMIUM, or
// chromium (Debian's name) or chromium-browser in PATH, or "".
func findChromium() string {
	if p := os.Getenv("PIR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// The forged member: its ID and metadata are markup that would run script
// if the page ever parsed them as HTML. Either payload sets window.pwned
// and the title; the test checks that neither did. An ID is printable
// ASCII without spaces (docs/wire.md); metadata may hold anything.
const (
	forgedID      = `<script>window.pwned=1;document.title='pwned'</script>`
	forgedMetaKey = `<b>role</b>`
	forgedMetaVal = `"><img src=x onerror="window.pwned=2;document.title='pwned'">`
)

// TestLivePage opens the agent's page in Chromium, sees the three members
// of a group, sees one killed with SIGKILL leave the page without a
// reload, and sees a forged member whose ID and metadata are markup shown
// as text, with no script run.
func TestLivePage(t *testing.T) {
	if pirPath == "" {
		t.Skip("browser: " + skipReason)
	}
	l, err := nslan.New(nslan.Config{Hosts: 5, IPv4: true, Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	hosts := l.Hosts()
	agentHost, forgerHost := hosts[0], hosts[4]

	var members []*pircli.Peer
	for _, h := range hosts[1:4] {
		p, err := pircli.Join(h, pirPath, "member-"+h.Name, "-4")
		require.NoError(t, err)
		t.Cleanup(func() { stop(t, p.Proc) })
		members = append(members, p)
	}
	const httpAddr = "127.0.0.1:8500"
	agentArgs := []string{"-json", "-group", "pir", "-iface", "eth0", "-4", "-http", httpAddr, "-dns", "127.0.0.1:8600"}
	agent := startAgent(t, agentHost, agentArgs...)

	tab := newBrowser(t, agentHost)
	ctx, cancel := context.WithTimeout(tab, 3*startTimeout)
	defer cancel()

	// The agent listens a moment after it starts; the first navigation
	// that reaches it shows the page.
	startCtx, startCancel := context.WithTimeout(ctx, startTimeout)
	defer startCancel()
	openPage(t, startCtx, tab, agent, "http://"+httpAddr+"/")

	// The three members, and only they.
	want := []string{"member-h1", "member-h2", "member-h3"}
	_, err = chromedp.Run(startCtx, chromedp.PollFunction[chromedp.Void](`(want) =>
		JSON.stringify(Array.from(document.querySelectorAll('li.member[data-group="pir"]'), e => e.dataset.member)) === JSON.stringify(want)`,
		chromedp.WithPollingArgs(want), chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
	require.NoError(t, err, "the page never listed exactly %v; it shows %v", want, pageMembers(tab))
	status, err := chromedp.Run(startCtx, chromedp.Evaluate[string](`document.getElementById('status').dataset.status`))
	require.NoError(t, err)
	assert.Equal(t, "live", status, "the page follows the event stream")
	for _, id := range want {
		text, err := chromedp.Run(startCtx, chromedp.PollFunction[string](`(id) => {
			const m = Array.from(document.querySelectorAll('li.member')).find(e => e.dataset.member === id);
			return m && m.dataset.verdict === 'healthy' && m.textContent; }`,
			chromedp.WithPollingArgs(id), chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
		require.NoError(t, err, "member %s is never shown healthy", id)
		assert.Contains(t, text, "tcp://198.18.", "member %s shows its URIs", id)
	}

	// The last-heard age ticks on its own.
	age, err := chromedp.Run(startCtx, chromedp.Evaluate[string](`document.querySelector('li.member [data-field="last_heard"]').textContent`))
	require.NoError(t, err)
	_, err = chromedp.Run(startCtx, chromedp.PollFunction[chromedp.Void](`(age) =>
		document.querySelector('li.member [data-field="last_heard"]').textContent !== age`,
		chromedp.WithPollingArgs(age), chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
	require.NoError(t, err, "the last-heard age stays %q", age)

	// kill -9 one member: it sends no goodbye; the agent notices by its
	// failed probes and silence, and the open page drops it. The page
	// notes when (by this machine's clock, as the lab stamps the agent's
	// output), and a global set now shows that it was never reloaded.
	killed := members[2]
	armed, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`((id) => {
		window.pirTestMarker = true;
		const obs = new MutationObserver(() => {
			if (!Array.from(document.querySelectorAll('li.member')).some(e => e.dataset.member === id)) {
				window.pirGoneAt = Date.now();
				obs.disconnect();
			}
		});
		obs.observe(document.body, {childList: true, subtree: true});
		return true;
	})(`+jsString(killed.ID)+`)`))
	require.NoError(t, err)
	require.True(t, armed)
	killedAt := time.Now()
	require.NoError(t, killed.Kill())
	leaveCtx, leaveCancel := context.WithTimeout(ctx, leaveTimeout)
	defer leaveCancel()
	_, err = chromedp.Run(leaveCtx, chromedp.PollFunction[chromedp.Void](`(id) =>
		!Array.from(document.querySelectorAll('li.member')).some(e => e.dataset.member === id)`,
		chromedp.WithPollingArgs(killed.ID), chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
	require.NoError(t, err, "%s still on the page %v after kill -9; it shows %v", killed.ID, time.Since(killedAt), pageMembers(tab))
	goneMs, err := chromedp.Run(ctx, chromedp.Evaluate[int64](`window.pirGoneAt`))
	require.NoError(t, err)
	gone := time.UnixMilli(goneMs).Sub(killedAt)
	// The agent prints its events (-json), stamped by the lab as it reads
	// them: the time to that line is pir's failure detection, and what
	// follows it the page's part, which the test bounds. (The issue's
	// "within 3 s" of the kill is pir's detection plus this; it is
	// reported, not asserted: under load detection alone came to 2.9 s.)
	agentOut := &pircli.Peer{Proc: agent}
	e, err := agentOut.WaitEvent(ctx, 0, pircli.Is(pircli.Left, killed.ID))
	require.NoError(t, err, "the agent printed no left event for %s", killed.ID)
	// The lab reads the line a little after the agent wrote it, so on a
	// loaded machine the page's part can even come out negative.
	pagePart := time.UnixMilli(goneMs).Sub(e.Line.At)
	t.Logf("figures: %s left the page %v after kill -9; the agent printed left (%s) %v after the kill; the page's part %v",
		killed.ID, gone.Round(time.Millisecond), e.Reason, e.Line.At.Sub(killedAt).Round(time.Millisecond), pagePart.Round(time.Millisecond))
	assert.Less(t, pagePart, pageBound, "from the agent's left event to the page without the member")
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.pirTestMarker === true`))
	require.NoError(t, err)
	assert.True(t, kept, "the page was reloaded")

	// A forged member whose ID and metadata are markup.
	startForger(t, forgerHost)
	forgedCtx, forgedCancel := context.WithTimeout(ctx, startTimeout)
	defer forgedCancel()
	shown, err := chromedp.Run(forgedCtx, chromedp.PollFunction[map[string]string](`(id, key) => {
		const m = Array.from(document.querySelectorAll('li.member')).find(e => e.dataset.member === id);
		if (!m) return null;
		const meta = Array.from(m.querySelectorAll('dd.meta')).find(e => e.dataset.meta === key);
		if (!meta) return null;
		return {id: m.querySelector('.member-id').textContent, meta: meta.textContent};
	}`, chromedp.WithPollingArgs(forgedID, forgedMetaKey), chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
	require.NoError(t, err, "the forged member never appeared; the page shows %v", pageMembers(tab))
	assert.Equal(t, forgedID, shown["id"], "the forged ID is shown as text")
	assert.Equal(t, forgedMetaVal, shown["meta"], "the forged metadata is shown as text")

	// Nothing of it became markup, and nothing ran.
	title, err := chromedp.Run(ctx, chromedp.Title())
	require.NoError(t, err)
	assert.Equal(t, "pir agent", title)
	pwned, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(window.pwned)`))
	require.NoError(t, err)
	assert.Equal(t, "undefined", pwned, "an injected script ran")
	counts, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]int](`({
		img: document.querySelectorAll('img').length,
		script: document.querySelectorAll('script').length,
		b: document.querySelectorAll('b').length })`))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"img": 0, "script": 1, "b": 0}, counts, "elements made of forged text")
	kept, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`window.pirTestMarker === true`))
	require.NoError(t, err)
	assert.True(t, kept, "the page was reloaded")

	// The agent restarts; a member dies while it is down. The page
	// reconnects by itself and shows the new agent's members.
	stop(t, agent)
	_, err = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`document.getElementById('status').dataset.status !== 'live'`,
		chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
	require.NoError(t, err, "the page never noticed that the agent stopped")
	require.NoError(t, members[1].Kill())
	agent = startAgent(t, agentHost, agentArgs...)
	want = []string{forgedID, "member-h1"}
	restartCtx, restartCancel := context.WithTimeout(ctx, startTimeout)
	defer restartCancel()
	_, err = chromedp.Run(restartCtx, chromedp.PollFunction[chromedp.Void](`(want) =>
		document.getElementById('status').dataset.status === 'live' &&
		JSON.stringify(Array.from(document.querySelectorAll('li.member[data-group="pir"]'), e => e.dataset.member)) === JSON.stringify(want)`,
		chromedp.WithPollingArgs(want), chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
	require.NoError(t, err, "after the agent's restart the page never listed exactly %v; it shows %v", want, pageMembers(tab))
	kept, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`window.pirTestMarker === true`))
	require.NoError(t, err)
	assert.True(t, kept, "the page was reloaded")
}

// startAgent starts the pir-agent binary with args on h; when the test ends it is
// interrupted and must exit cleanly.
func startAgent(t *testing.T, h *nslan.Host, args ...string) *nslan.Proc {
	t.Helper()
	cmd := h.Command(context.Background(), agentPath, args...)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	p, err := h.StartCommand(cmd)
	require.NoError(t, err)
	t.Cleanup(func() { stop(t, p) })
	return p
}

// stop interrupts p unless it has exited, and checks that it exits with
// status 0 and reported no data race.
func stop(t *testing.T, p *nslan.Proc) {
	select {
	case <-p.Done():
	default:
		if err := p.Interrupt(); !errors.Is(err, os.ErrProcessDone) {
			assert.NoError(t, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
		defer cancel()
		assert.NoError(t, p.Wait(ctx), "pir exits cleanly on SIGINT; stderr:\n%s", p.Stderr())
	}
	assert.NotContains(t, p.Stderr(), "WARNING: DATA RACE")
}

// newBrowser starts a headless Chromium in h's namespace and returns the
// context of its tab. The browser talks to chromedp over a pipe, so it
// needs no port that the test could not reach. It is stopped when the
// test ends.
func newBrowser(t *testing.T, h *nslan.Host) context.Context {
	t.Helper()
	nsenter, err := exec.LookPath("nsenter")
	require.NoError(t, err)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		// Nothing to fetch from elsewhere: the namespace has no route
		// out anyway.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// Run the browser through nsenter, which execs it in
			// h's network namespace and keeps the pipe's descriptors.
			cmd.Args = append([]string{"nsenter", "--net=" + filepath.Join("/run/netns", h.NS), "--", cmd.Path}, cmd.Args[1:]...)
			cmd.Path = nsenter
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}),
	)
	// The allocator and the browser live as long as the test, not ctx:
	// chromedp ties the browser to the context of its first Run.
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, tcancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			t.Logf("page exception: %s", e.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value))
			}
			t.Logf("page console.%s: %s", e.Type, strings.Join(args, " "))
		}
	}))
	t.Cleanup(func() {
		tcancel()
		acancel()
	})
	// Start the browser now. Its first Run must have the tab's own
	// context, which lives as long as the test; the start is bounded
	// apart.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tab) }()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case err := <-started:
		require.NoError(t, err, "starting Chromium")
	case <-timer.C:
		tcancel()
		<-started
		t.Fatalf("Chromium did not start within %v", startTimeout)
	}
	return tab
}

// openPage navigates tab to url until the agent answers with its page:
// the agent p has just been started and may not listen yet.
func openPage(t *testing.T, ctx context.Context, tab context.Context, p *nslan.Proc, url string) {
	t.Helper()
	for {
		err := chromedp.Do(ctx, chromedp.Navigate(url))
		if err == nil {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('groups') !== null`))
			if err == nil && ok {
				return
			}
		}
		select {
		case <-p.Done():
			t.Fatalf("pir-agent exited: %v; stderr:\n%s", p.Wait(ctx), p.Stderr())
		case <-ctx.Done():
			t.Fatalf("the agent's page never loaded: %v (last: %v); stderr:\n%s", ctx.Err(), err, p.Stderr())
		case <-time.After(100 * time.Millisecond): // the agent is starting: try again
		}
	}
}

// pageMembers lists the members the page shows, for failure messages.
func pageMembers(tab context.Context) []string {
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('li.member'), e => e.dataset.group + '/' + e.dataset.member)`))
	if err != nil {
		return []string{"(" + err.Error() + ")"}
	}
	return ids
}

// startForger runs the forger on h, announcing the forged member in group
// pir on the default port, and waits until it is ready.
func startForger(t *testing.T, h *nslan.Host) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	meta := url.Values{forgedMetaKey: {forgedMetaVal}}.Encode()
	cmd := h.Command(context.Background(), exe, "pir", "9999", forgedID, meta, h.IPv4.String())
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	p, err := h.StartCommand(cmd)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = p.Kill()
		ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
		defer cancel()
		_ = p.Wait(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	_, _, err = p.WaitLine(ctx, 0, func(l nslan.Line) bool { return l.Text == "ready" })
	require.NoError(t, err)
}

// forger is the test binary's helper mode: args are GROUP PORT ID META
// ADDR. It answers pir's tcp health probe (0x00 for 0x00) on ADDR and
// multicasts GROUP|ID|tcp://ADDR:P|tcp://ADDR:P|ann|META to 224.0.0.1:PORT
// on eth0 twice a second, as a member would: the health URI's host is its
// own address, which pir requires by default. It prints "ready" once it
// has sent its first announcement, and runs until killed.
func forger(args []string) int {
	if len(args) != 5 {
		fmt.Fprintf(os.Stderr, "forger: want GROUP PORT ID META ADDR, got %q\n", args)
		return 2
	}
	port, err := strconv.Atoi(args[1])
	addr, aerr := netip.ParseAddr(args[4])
	if err != nil || aerr != nil {
		fmt.Fprintf(os.Stderr, "forger: bad arguments %q\n", args)
		return 2
	}
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		fmt.Fprintln(os.Stderr, "forger:", err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				b := make([]byte, 1)
				if n, _ := c.Read(b); n == 1 && b[0] == 0 {
					_, _ = c.Write([]byte{0})
				}
			}()
		}
	}()
	tx, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 1), Port: port})
	if err != nil {
		fmt.Fprintln(os.Stderr, "forger:", err)
		return 1
	}
	uri := "tcp://" + ln.Addr().String()
	msg := []byte(strings.Join([]string{args[0], args[2], uri, uri, "ann", args[3]}, "|"))
	for i := 0; ; i++ {
		if _, err := tx.Write(msg); err != nil {
			fmt.Fprintln(os.Stderr, "forger:", err)
			return 1
		}
		if i == 0 {
			fmt.Println("ready")
		}
		time.Sleep(500 * time.Millisecond)
	}
}
