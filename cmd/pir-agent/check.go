package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"strings"
	"time"
)

// A check tells whether a service the agent announces (-service) is
// healthy: nil for healthy. It is bounded by ctx, which carries
// -check-timeout.
type check struct {
	what string // for messages: "tcp 127.0.0.1:8080", "GET http://...", "exec /bin/sh"
	run  func(ctx context.Context) error
}

// parseCheck makes the check that spec names (the part of -check after
// "group="), for the service at uri. An empty spec is the default: a TCP
// connect to the service's host and port.
func parseCheck(spec string, uri *url.URL) (check, error) {
	switch {
	case spec == "" || spec == "tcp":
		addr, err := dialAddr(uri)
		if err != nil {
			return check{}, err
		}
		return check{what: "tcp " + addr, run: func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return c.Close()
		}}, nil
	case spec == "none":
		return check{what: "none", run: func(context.Context) error { return nil }}, nil
	case strings.HasPrefix(spec, "http://") || strings.HasPrefix(spec, "https://"):
		u, err := url.Parse(spec)
		if err != nil || u.Host == "" {
			return check{}, fmt.Errorf("want an http:// or https:// URL with a host")
		}
		return httpCheck(u), nil
	case strings.HasPrefix(spec, "exec:"):
		argv, err := splitWords(strings.TrimPrefix(spec, "exec:"))
		if err != nil {
			return check{}, err
		}
		if len(argv) == 0 {
			return check{}, fmt.Errorf("exec: names no command")
		}
		return execCheck(argv), nil
	}
	return check{}, fmt.Errorf("want tcp, none, an http:// or https:// URL, or exec:COMMAND ARGS")
}

// dialAddr is the host:port a TCP check of the service at uri connects to:
// the URI's, with a loopback address for a host that names every address
// (0.0.0.0, [::] or none), and the scheme's port when the URI has none.
func dialAddr(uri *url.URL) (string, error) {
	host, port := uri.Hostname(), uri.Port()
	if port == "" {
		switch uri.Scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		default:
			return "", fmt.Errorf("the service URI has no port to check: give it one, or a -check")
		}
	}
	if a, err := netip.ParseAddr(host); host == "" || err == nil && a.IsUnspecified() {
		host = "127.0.0.1"
		if err == nil && a.Is6() {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// maxCheckBody is how much of an HTTP check's response body is read (and
// thrown away) before the connection is closed.
const maxCheckBody = 4 << 10

// httpCheck GETs u: a 2xx status is healthy. Redirects are not followed
// and no proxy is used, so that the check asks the service itself.
func httpCheck(u *url.URL) check {
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	target := u.String()
	return check{what: "GET " + target, run: func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "pir-agent-check")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxCheckBody))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}}
}

// execCheck runs argv (no shell unless argv names one): exit status 0 is
// healthy. Its stdin, stdout and stderr are /dev/null. When ctx ends
// first, its whole process group is killed (see killGroup), so that a
// shell's children do not outlive the check.
func execCheck(argv []string) check {
	return check{what: "exec " + argv[0], run: func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		killGroup(cmd)
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return err
	}}
}

// splitWords splits s into words as a POSIX shell would, without
// expanding anything: blanks separate words; 'single quotes' keep
// everything up to the next single quote; "double quotes" keep everything
// but \" and \\, which stand for " and \; outside quotes a backslash keeps
// the next character.
func splitWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("exec: unterminated single quote")
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				w.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, errors.New("exec: unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("exec: a backslash ends the command")
			}
			i++
			w.WriteByte(s[i])
			inWord = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// checkLoop runs c every interval, one run at a time, each
// bounded by timeout, and calls report with each result, until ctx is
// done. Probes never start a check: they are answered from the last
// result, so a flood of probes runs no command at all.
func checkLoop(ctx context.Context, c check, interval, timeout time.Duration, report func(error)) {
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := runCheck(ctx, c, timeout)
		if ctx.Err() != nil {
			return
		}
		report(err)
		t.Reset(interval)
	}
}

// runCheck runs c once, bounded by timeout and ctx.
func runCheck(ctx context.Context, c check, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.run(ctx)
}
