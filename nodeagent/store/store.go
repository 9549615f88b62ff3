// Package store keeps nodenet-agent's desired state on disk: one file per managed object
// (objects/<kind>__<name>.json) and the boot id at which the node last had that state
// applied (boot_id). Every write is atomic: a temporary file in the same directory is
// written, fsynced and renamed over the target, and the directory is fsynced.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/internal/atomicfile"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// ErrNotFound is returned by Get and Delete for an id the store does not hold.
var ErrNotFound = errors.New("object not in the state store")

// Record is one managed object.
type Record struct {
	// Object is the desired spec, as last applied.
	Object *pb.Object
	// Owned is the observed object read back after the last apply: the kernel entries the
	// object owns.
	Owned *pb.Object
	// AppliedAt is when the object was last applied.
	AppliedAt time.Time
}

// ID is the record's object id.
func (r *Record) ID() string { return r.Object.GetId() }

// fileRecord is the on-disk form of a Record: protojson objects inside a JSON envelope.
type fileRecord struct {
	Version   int             `json:"version"`
	ID        string          `json:"id"`
	Object    json.RawMessage `json:"object"`
	Owned     json.RawMessage `json:"owned,omitempty"`
	AppliedAt time.Time       `json:"applied_at"`
}

const (
	objectsDir = "objects"
	bootIDFile = "boot_id"
	suffix     = ".json"
	sep        = "__"
)

// Store is the desired state in one directory. It is safe for concurrent use; callers
// serialise operations on one object themselves.
type Store struct {
	dir string
	mu  sync.Mutex // guards bootID
}

// Open opens (creating if needed) the state directory dir.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: a state directory is required")
	}
	if err := os.MkdirAll(filepath.Join(dir, objectsDir), 0o700); err != nil {
		return nil, fmt.Errorf("store: state dir %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(id string) (string, error) {
	kind, name, err := pb.SplitObjectID(id)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	return filepath.Join(s.dir, objectsDir, kind+sep+name+suffix), nil
}

// Put writes the record of rec.Object's id, replacing any previous one.
func (s *Store) Put(rec *Record) error {
	if rec == nil || rec.Object == nil {
		return errors.New("store: record without an object")
	}
	p, err := s.path(rec.Object.GetId())
	if err != nil {
		return err
	}
	fr := fileRecord{Version: 1, ID: rec.Object.GetId(), AppliedAt: rec.AppliedAt.UTC()}
	if fr.Object, err = protojson.Marshal(rec.Object); err != nil {
		return fmt.Errorf("store: marshal %s: %w", fr.ID, err)
	}
	if rec.Owned != nil {
		if fr.Owned, err = protojson.Marshal(rec.Owned); err != nil {
			return fmt.Errorf("store: marshal %s: %w", fr.ID, err)
		}
	}
	data, err := json.MarshalIndent(&fr, "", "  ")
	if err != nil {
		return fmt.Errorf("store: marshal %s: %w", fr.ID, err)
	}
	// The directory is made again if it went away (a cleaned /var/lib, say).
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("store: state dir: %w", err)
	}
	if err := atomicfile.Write(p, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("store: write %s: %w", p, err)
	}
	return nil
}

// Get returns the record of id, or an error wrapping ErrNotFound.
func (s *Store) Get(id string) (*Record, error) {
	p, err := s.path(id)
	if err != nil {
		return nil, err
	}
	rec, err := readRecord(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if rec.ID() != id {
		return nil, fmt.Errorf("store: %s holds object %q, expected %q", p, rec.ID(), id)
	}
	return rec, nil
}

// Delete removes the record of id; it returns an error wrapping ErrNotFound if there is none.
func (s *Store) Delete(id string) error {
	p, err := s.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("store: %s: %w", id, ErrNotFound)
		}
		return fmt.Errorf("store: %w", err)
	}
	_ = atomicfile.SyncDir(filepath.Dir(p)) // best effort: the removal itself succeeded
	return nil
}

// List returns every record, sorted by id. A file that does not parse fails the whole List
// with an error naming the file.
func (s *Store) List() ([]*Record, error) {
	dir := filepath.Join(s.dir, objectsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var out []*Record
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, suffix) {
			continue // temporary files of interrupted writes and strays
		}
		rec, err := readRecord(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out, nil
}

func readRecord(p string) (*Record, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("store: %w", err)
	}
	corrupt := func(err error) error {
		return fmt.Errorf("store: state file %s is corrupt (fix or remove it): %w", p, err)
	}
	var fr fileRecord
	if err := json.Unmarshal(data, &fr); err != nil {
		return nil, corrupt(err)
	}
	if len(fr.Object) == 0 {
		return nil, corrupt(errors.New("no object"))
	}
	rec := &Record{Object: &pb.Object{}, AppliedAt: fr.AppliedAt}
	if err := protojson.Unmarshal(fr.Object, rec.Object); err != nil {
		return nil, corrupt(err)
	}
	if len(fr.Owned) > 0 && string(fr.Owned) != "null" {
		rec.Owned = &pb.Object{}
		if err := protojson.Unmarshal(fr.Owned, rec.Owned); err != nil {
			return nil, corrupt(err)
		}
	}
	if _, _, err := pb.SplitObjectID(rec.ID()); err != nil {
		return nil, corrupt(err)
	}
	return rec, nil
}

// LastBootID is the boot id at which the state was last applied ("" if never).
func (s *Store) LastBootID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(s.dir, bootIDFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SetBootID records the boot id at which the state was applied.
func (s *Store) SetBootID(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := filepath.Join(s.dir, bootIDFile)
	if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == id {
		return nil
	}
	if err := atomicfile.Write(p, []byte(id+"\n"), 0o600); err != nil {
		return fmt.Errorf("store: write %s: %w", p, err)
	}
	return nil
}
