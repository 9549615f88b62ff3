package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// cleanTemp removes the temporary files of atomic writes that a crash interrupted
// (".<name>.tmp-*", see internal/atomicfile) and returns their paths.
func cleanTemp(dirs ...string) ([]string, error) {
	var removed []string
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return removed, fmt.Errorf("store: %w", err)
		}
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() || !strings.HasPrefix(n, ".") || !strings.Contains(n, ".tmp-") {
				continue
			}
			p := filepath.Join(dir, n)
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return removed, fmt.Errorf("store: removing the leftover %s: %w", p, err)
			}
			removed = append(removed, p)
		}
	}
	return removed, nil
}

// migrate moves a directory of format 1 to this format: each record gets the boot id that
// format 1 kept for the whole directory and a file name that escapes its id; the kernel
// entries it owns are left for the server to fill in from the kind's claims.
func (s *Store) migrate() error {
	bootIDPath := filepath.Join(s.dir, "boot_id")
	boot := ""
	if b, err := os.ReadFile(bootIDPath); err == nil {
		boot = strings.TrimSpace(string(b))
	}
	dir := filepath.Join(s.dir, objectsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, suffix) {
			continue
		}
		old := filepath.Join(dir, n)
		rec, err := readRecord(old)
		if err != nil {
			return err
		}
		if rec.BootID == "" {
			rec.BootID = boot
		}
		if err := s.Put(rec); err != nil {
			return err
		}
		if p, _ := s.path(rec.ID()); p != old {
			if err := os.Remove(old); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
	}
	if err := os.Remove(bootIDPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// cleanIntents removes the intents that must not be taken as operations under way: one torn
// (written without fsync, only a power loss tears it; the kernel entries it guarded are gone
// with the power), and one older than its record's last outcome (the outcome's removal of it
// did not reach the disk before a power loss).
func (s *Store) cleanIntents() ([]string, error) {
	dir := filepath.Join(s.dir, objectsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var removed []string
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), intentSuffix)
		if !ok || e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		intent, ierr := readRecord(p)
		rec, rerr := readRecord(filepath.Join(dir, base+suffix))
		stale := ierr == nil && rerr == nil && intent.Pending != nil && !rec.AppliedAt.Before(intent.Pending.Started)
		if ierr == nil && !stale {
			continue
		}
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("store: %w", err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}
