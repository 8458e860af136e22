package config_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
)

func TestWatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := writeFile(t, dir, "config.yaml", "v: 0\n")

	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan string, 16) // the file's content at each onChange
	done := make(chan error, 1)
	go func() {
		done <- config.Watch(ctx, p, nil, 20*time.Millisecond, func() {
			b, err := os.ReadFile(p)
			if err != nil {
				changes <- "unreadable: " + err.Error()
				return
			}
			changes <- string(b)
		})
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	next := func(what string) string {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case err := <-done:
			stopped = true
			t.Fatalf("%s: Watch returned early: %v", what, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no onChange within 5s", what)
		}
		return ""
	}

	// The watch is set up on Watch's goroutine: write new content until it
	// is seen (each write waits long enough to be debounced on its own).
	var last string
	deadline := time.Now().Add(5 * time.Second)
	for n := 1; ; n++ {
		last = fmt.Sprintf("v: %d\n", n)
		if err := os.WriteFile(p, []byte(last), 0o600); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-changes:
			if c != last {
				t.Fatalf("onChange saw %q, want the content just written %q", c, last)
			}
		case <-time.After(300 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("an in-place write was never reported")
			}
			continue
		}
		break
	}

	t.Run("same content is not a change", func(t *testing.T) {
		if err := os.WriteFile(p, []byte(last), 0o600); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if err := os.Chtimes(p, now, now); err != nil {
			t.Fatal(err)
		}
		// Give a spurious onChange ample time (debounce is 20ms) to come
		// first; the next one must carry the new content.
		select {
		case c := <-changes:
			t.Fatalf("onChange after rewriting the same content (saw %q)", c)
		case <-time.After(300 * time.Millisecond):
		}
		if err := os.WriteFile(p, []byte("v: in place\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if c := next("in-place write"); c != "v: in place\n" {
			t.Errorf("onChange saw %q", c)
		}
	})

	t.Run("atomic replace by rename", func(t *testing.T) {
		tmp := filepath.Join(dir, ".config.yaml.tmp")
		if err := os.WriteFile(tmp, []byte("v: renamed\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		if c := next("rename over the file"); c != "v: renamed\n" {
			t.Errorf("onChange saw %q", c)
		}
	})

	t.Run("other files in the directory are ignored", func(t *testing.T) {
		writeFile(t, dir, "other.yaml", "x: 1\n")
		select {
		case c := <-changes:
			t.Fatalf("onChange for another file (config has %q)", c)
		case <-time.After(300 * time.Millisecond):
		}
	})

	cancel()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("Watch returned %v after its context ended, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return within 5s of its context ending")
	}
}

func TestWatchSetupError(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "no-such-dir", "config.yaml")
	errc := make(chan error, 1)
	go func() { errc <- config.Watch(context.Background(), p, nil, time.Millisecond, func() {}) }()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Watch of a file in a missing directory returned nil")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch of a file in a missing directory blocked instead of failing")
	}
}

func TestWatchReportsAnEditMadeBeforeItStarted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := writeFile(t, dir, "config.yaml", "v: 1\n")
	loaded := sha256.Sum256([]byte("v: 0\n")) // what the caller had loaded
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	called := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- config.Watch(ctx, p, loaded[:], time.Millisecond, func() {
			select {
			case called <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("an edit made before the watch started was never reported")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
