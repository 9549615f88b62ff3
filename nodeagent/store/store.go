// Package store keeps nodenet-agent's desired state on disk, under --state-dir:
//
//	format                  the store's format version ("2")
//	objects/<id>.json       one record per managed object; the id escaped (see fileName)
//	objects/<id>.intent     the intent of an operation under way on the object
//
// A record holds the object's desired spec with its owner, the kernel entries it owns and
// the boot at which the kernel last got its entries. Before an operation touches the kernel,
// its intent (the owner and the entries it may create) is written beside the record, so a
// crash of the agent leaves a record of what the node may hold; the outcome replaces the
// record and removes the intent. The intent holds no spec: that is in the request, and
// writing it twice per apply would double what an apply serialises. Writes are atomic (a temporary file renamed over the
// target). A record is fsynced with its directory, so it survives a power loss. An intent is
// not: it only has to outlive the agent's process, since the kernel entries it guards do not
// outlive the machine, and skipping its fsyncs keeps applies from queueing on the disk. When
// the store is opened, an intent torn by a power loss, or older than its record's last
// outcome, is removed, as are temporary files of interrupted writes.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/internal/atomicfile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Format is the store format this agent writes; it reads formats 1 to Format.
const Format = 2

// ErrNotFound is returned by Get and Delete for an id the store does not hold.
var ErrNotFound = errors.New("object not in the state store")

// Record is one managed object.
type Record struct {
	// Object is the desired spec, with its owner, as last requested.
	Object *pb.Object
	// Owned are the kernel entries (dataplane keys) the object owns. Nil in a record of
	// format 1; the server fills it from the kind's claims.
	Owned []string
	// BootID is the boot at which the kernel last got the object's entries (an apply or a
	// replay); a record of another boot is replayed at start.
	BootID string
	// AppliedAt is when the object was last applied.
	AppliedAt time.Time
	// Pending is the intent of an operation under way (written with PutIntent); a crash
	// leaves it. A record that has only an intent (a create or an adoption under way) has an
	// Object with its id and owner and no spec.
	Pending *Pending
	// Marks are what an adoption overwrote (a link's previous ifalias, by entry key), for
	// giving it back when an import is undone.
	Marks map[string]string
}

// Pending is an operation's intent, recorded before the kernel is touched.
type Pending struct {
	// Op is "apply", "delete" or "adopt".
	Op string `json:"op"`
	// Claims are the entries the operation may create besides those the object owned.
	Claims []string `json:"claims,omitempty"`
	// Marks are what an adoption under way overwrites, so that it can be given back.
	Marks map[string]string `json:"marks,omitempty"`
	// Started is when the operation began.
	Started time.Time `json:"started"`
}

// ID is the record's object id.
func (r *Record) ID() string { return r.Object.GetId() }

// Entries are what the object owns or may hold: its owned entries and a pending operation's
// claims.
func (r *Record) Entries() []string {
	if r.Pending == nil {
		return r.Owned
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range append(append([]string(nil), r.Owned...), r.Pending.Claims...) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// fileRecord is the on-disk form of a Record: protojson objects inside a JSON envelope.
type fileRecord struct {
	Version   int               `json:"version"`
	ID        string            `json:"id"`
	Object    json.RawMessage   `json:"object"`
	Owned     json.RawMessage   `json:"owned,omitempty"` // format 1: an observed object; 2: keys
	BootID    string            `json:"boot_id,omitempty"`
	AppliedAt time.Time         `json:"applied_at"`
	Pending   *Pending          `json:"pending,omitempty"`
	Marks     map[string]string `json:"marks,omitempty"`
}

const (
	objectsDir   = "objects"
	formatFile   = "format"
	suffix       = ".json"
	intentSuffix = ".intent"
)

// Store is the desired state in one directory, of which it must be the only writer (one
// agent per state dir): it keeps what it read and wrote in memory, so a request does not read
// and parse its object's file again. It is safe for concurrent use; callers serialise
// operations on one object themselves.
type Store struct {
	dir     string
	cleaned []string

	mu    sync.Mutex
	cache map[string]*Record

	// FailWrite, when set (by tests), is called before every write of a record; an error
	// fails the write as if the disk had refused it.
	FailWrite func(rec *Record) error
}

// Open opens (creating if needed) the state directory dir. It refuses a directory written
// in a newer format, moves records of format 1 to this format, and removes the temporary
// files of writes a crash interrupted.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: a state directory is required")
	}
	if err := os.MkdirAll(filepath.Join(dir, objectsDir), 0o700); err != nil {
		return nil, fmt.Errorf("store: state dir %s: %w", dir, err)
	}
	s := &Store{dir: dir, cache: map[string]*Record{}}
	format, err := s.readFormat()
	if err != nil {
		return nil, err
	}
	if s.cleaned, err = cleanTemp(dir, filepath.Join(dir, objectsDir)); err != nil {
		return nil, err
	}
	stale, err := s.cleanIntents()
	if err != nil {
		return nil, err
	}
	s.cleaned = append(s.cleaned, stale...)
	if format < Format {
		if err := s.migrate(); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(filepath.Join(dir, formatFile), []byte(strconv.Itoa(Format)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return s, nil
}

// readFormat is the directory's format: 1 for a directory of the first agents (no format
// file but objects or a boot_id file), Format for a new one.
func (s *Store) readFormat() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, formatFile))
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(s.dir, "boot_id")); err == nil {
			return 1, nil
		}
		ents, _ := os.ReadDir(filepath.Join(s.dir, objectsDir))
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), suffix) {
				return 1, nil
			}
		}
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("store: %s holds %q, not a format number; fix or remove it", filepath.Join(s.dir, formatFile), strings.TrimSpace(string(b)))
	}
	if n > Format {
		return 0, newerFormat(s.dir, n)
	}
	return n, nil
}

func newerFormat(dir string, n int) error {
	return fmt.Errorf("store: state dir %s is of format %d, written by a newer nodenet-agent; this agent reads formats 1 to %d. "+
		"Run the newer agent (or a later one), or move the directory away to start empty: the agent then manages nothing on this node until the next terraform apply",
		dir, n, Format)
}

// Cleaned lists the files Open removed: temporary files of interrupted writes, and intents
// torn by a power loss or older than their record's last outcome.
func (s *Store) Cleaned() []string { return s.cleaned }

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// fileName is the record file of an id: every byte but letters, digits, '.', '_' and '-'
// escaped as %XX ('/' included), so ids whose names are CIDRs or contain path characters
// map to one file each, inside objects/.
func fileName(id string) string { return escape(id) + suffix }

func escape(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && i > 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (s *Store) path(id string) (string, error) {
	if _, _, err := pb.SplitObjectID(id); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	return filepath.Join(s.dir, objectsDir, fileName(id)), nil
}

// intentPath is the intent file beside a record file.
func intentPath(recordPath string) string {
	return strings.TrimSuffix(recordPath, suffix) + intentSuffix
}

// Put writes the record of rec.Object's id, replacing any previous one, and removes its
// intent: the operation's outcome is recorded. rec.Pending is not written (see PutIntent).
func (s *Store) Put(rec *Record) error {
	if rec == nil || rec.Object == nil {
		return errors.New("store: record without an object")
	}
	p, err := s.path(rec.ID())
	if err != nil {
		return err
	}
	if s.FailWrite != nil {
		if err := s.FailWrite(rec); err != nil {
			return fmt.Errorf("store: write %s: %w", p, err)
		}
	}
	fr := fileRecord{Version: Format, ID: rec.ID(), BootID: rec.BootID, AppliedAt: rec.AppliedAt.UTC(), Marks: rec.Marks}
	if fr.Object, err = protojson.Marshal(rec.Object); err != nil {
		return fmt.Errorf("store: marshal %s: %w", fr.ID, err)
	}
	if fr.Owned, err = json.Marshal(rec.Owned); err != nil {
		return fmt.Errorf("store: marshal %s: %w", fr.ID, err)
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
		s.forget(rec.ID()) // the file may or may not be the new one
		return fmt.Errorf("store: write %s: %w", p, err)
	}
	if err := os.Remove(intentPath(p)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.forget(rec.ID())
		return fmt.Errorf("store: %w", err)
	}
	r := *rec
	r.Pending = nil
	s.remember(&r)
	return nil
}

// PutIntent records that an operation on the object id, for owner, is under way, beside the
// object's record, which it does not change. See the package comment for why it is not
// synced.
func (s *Store) PutIntent(id, owner string, p *Pending) error {
	path, err := s.path(id)
	if err != nil {
		return err
	}
	if s.FailWrite != nil {
		if err := s.FailWrite(&Record{Object: &pb.Object{Id: id, Owner: owner}, Pending: p}); err != nil {
			return fmt.Errorf("store: write %s: %w", intentPath(path), err)
		}
	}
	obj, err := protojson.Marshal(&pb.Object{Id: id, Owner: owner})
	if err != nil {
		return fmt.Errorf("store: marshal %s: %w", id, err)
	}
	data, err := json.Marshal(&fileRecord{Version: Format, ID: id, Object: obj, Pending: p})
	if err != nil {
		return fmt.Errorf("store: marshal %s: %w", id, err)
	}
	s.forget(id)
	if err := atomicfile.WriteVolatile(intentPath(path), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("store: write %s: %w", intentPath(path), err)
	}
	return nil
}

// DropIntent removes the intent of id: the operation ended without changing the record.
func (s *Store) DropIntent(id string) error {
	path, err := s.path(id)
	if err != nil {
		return err
	}
	s.forget(id)
	if err := os.Remove(intentPath(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

func (s *Store) remember(rec *Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache[rec.ID()] = rec.clone()
}

func (s *Store) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache, id)
}

func (s *Store) cached(id string) *Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.cache[id]; ok {
		return r.clone()
	}
	return nil
}

// clone is a deep copy: callers change the records they get.
func (r *Record) clone() *Record {
	c := *r
	c.Object = proto.Clone(r.Object).(*pb.Object)
	c.Owned = append([]string(nil), r.Owned...)
	if r.Pending != nil {
		p := *r.Pending
		p.Claims = append([]string(nil), r.Pending.Claims...)
		c.Pending = &p
	}
	if r.Marks != nil {
		c.Marks = make(map[string]string, len(r.Marks))
		for k, v := range r.Marks {
			c.Marks[k] = v
		}
	}
	return &c
}

// Get returns the record of id, or an error wrapping ErrNotFound.
func (s *Store) Get(id string) (*Record, error) {
	p, err := s.path(id)
	if err != nil {
		return nil, err
	}
	if rec := s.cached(id); rec != nil {
		return rec, nil
	}
	rec, err := load(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if rec.ID() != id {
		return nil, fmt.Errorf("store: %s holds object %q, expected %q", p, rec.ID(), id)
	}
	s.remember(rec)
	return rec, nil
}

// load reads the record at p with its intent, if there is one (Open removed the intents
// older than their record).
func load(p string) (*Record, error) {
	rec, err := readRecord(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	intent, ierr := readRecord(intentPath(p))
	switch {
	case errors.Is(ierr, os.ErrNotExist):
		return rec, err
	case ierr != nil:
		return nil, ierr
	case rec == nil:
		return intent, nil // a create or an adoption under way
	}
	rec.Pending = intent.Pending
	return rec, nil
}

// Delete removes the record of id; it returns an error wrapping ErrNotFound if there is none.
func (s *Store) Delete(id string) error {
	p, err := s.path(id)
	if err != nil {
		return err
	}
	s.forget(id)
	found := false
	for _, f := range []string{intentPath(p), p} {
		err := os.Remove(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("store: %w", err)
		}
		found = found || err == nil
	}
	if !found {
		return fmt.Errorf("store: %s: %w", id, ErrNotFound)
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
	seen := map[string]bool{}
	var out []*Record
	for _, e := range ents {
		n := e.Name()
		base, ok := strings.CutSuffix(n, intentSuffix)
		if !ok {
			base, ok = strings.CutSuffix(n, suffix)
		}
		if e.IsDir() || strings.HasPrefix(n, ".") || !ok || seen[base] {
			continue
		}
		seen[base] = true
		rec, err := load(filepath.Join(dir, base+suffix))
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
	if fr.Version > Format {
		return nil, fmt.Errorf("store: %s is of format %d: %w", p, fr.Version, newerFormat(filepath.Dir(filepath.Dir(p)), fr.Version))
	}
	if len(fr.Object) == 0 {
		return nil, corrupt(errors.New("no object"))
	}
	rec := &Record{Object: &pb.Object{}, BootID: fr.BootID, AppliedAt: fr.AppliedAt, Pending: fr.Pending, Marks: fr.Marks}
	if err := protojson.Unmarshal(fr.Object, rec.Object); err != nil {
		return nil, corrupt(err)
	}
	if fr.Version >= 2 && len(fr.Owned) > 0 {
		if err := json.Unmarshal(fr.Owned, &rec.Owned); err != nil {
			return nil, corrupt(err)
		}
	}
	if _, _, err := pb.SplitObjectID(rec.ID()); err != nil {
		return nil, corrupt(err)
	}
	return rec, nil
}
