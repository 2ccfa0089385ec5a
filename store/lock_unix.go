//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// checkDataDirFree tells, before the engine tries, whether another process
// holds the data directory: the engine locks DIR/status while it runs, and
// its own failure is only printed, not returned.
func checkDataDirFree(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "status"), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: data directory %s: %w", dir, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("store: data directory %s is in use by another process: %w; stop that process, point APIMETER_DATA_DIR elsewhere, or send commands to the running server's HTTP API", dir, ErrDataDirLocked)
		}
		return fmt.Errorf("store: lock %s: %w", dir, err)
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
