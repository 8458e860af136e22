package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls onChange whenever the content of the file at path differs
// from the last content seen, until ctx ends; it blocks until then and
// returns nil, or an error if the watch cannot be set up. since is the
// SHA-256 of the content the caller already loaded (Config.Digest), so an
// edit made between that load and the watch's start is reported too; nil
// means the content at the start.
//
// It watches the file's directory, not the file, and compares content
// hashes, so the edits that replace a file rather than write it in place
// (editors' atomic saves, `mv`, Kubernetes ConfigMap symlink swaps) are seen,
// and touching a file without changing it is not. Bursts of events are
// debounced: onChange runs once the file has been quiet for debounce.
// onChange runs on Watch's goroutine, one call at a time.
func Watch(ctx context.Context, path string, since []byte, debounce time.Duration, onChange func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(path)); err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	last := since
	if last == nil {
		last = fileHash(path)
	}
	timer := time.NewTimer(0) // compare once now, for edits made before the watch began
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-w.Events:
			if !ok {
				return nil
			}
			timer.Reset(debounce)
		case _, ok := <-w.Errors:
			if !ok {
				return nil
			}
		case <-timer.C:
			if h := fileHash(path); !bytes.Equal(h, last) {
				last = h
				onChange()
			}
		}
	}
}

// fileHash is the SHA-256 of the file's content, nil when unreadable.
func fileHash(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(data)
	return sum[:]
}
