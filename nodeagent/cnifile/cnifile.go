// Package cnifile keeps one CNI configuration file in the node's CNI configuration directory
// (the agent's --cni-conf-dir, /etc/cni/net.d on a node): written whole or not at all, as
// undoable steps like the kernel entries of a kind, and never over a file nodenet did not
// write.
//
// Container runtimes read the directory as it is, so the file is replaced by a rename (a
// runtime reads the old configuration or the new one, never a torn one) from a temporary
// ".<name>.tmp-*" file, whose extension no runtime loads.
package cnifile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nodenet/terraform-provider-nodenet/internal/atomicfile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Mode of the files written: runtimes and the operator read them.
const Mode fs.FileMode = 0o644

// FileKey names a file the agent writes, as dataplane keys name kernel entries ("link <name>",
// "route <dst>"): an object claims and owns its configuration file by it, so two objects
// cannot write one file.
func FileKey(path string) string { return "file " + path }

// Path is the path of file in dir. dir must be absolute (what a relative one means would
// depend on the agent's working directory) and file a plain CNI configuration file name
// (pb.CNIFileName), so the path cannot leave dir.
func Path(dir, file string) (string, error) {
	if dir == "" {
		return "", errors.New("no CNI configuration directory: start the agent with --cni-conf-dir")
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("CNI configuration directory %q is not an absolute path", dir)
	}
	if !pb.CNIFileName(file) {
		return "", fmt.Errorf("%q is not a CNI configuration file name", file)
	}
	return filepath.Join(dir, file), nil
}

// Steps make dir/file hold content. owned says whether the object owns FileKey of the path
// (it wrote the file before): a file there that it does not own is a conflict naming it,
// and so is one it owns that is no longer a regular file; neither is touched. No steps when
// the file already holds content. The undo of a write puts back the file as it was, or
// removes it together with the directories the write made.
func Steps(dir, file, content string, owned bool) ([]dataplane.Step, error) {
	path, err := Path(dir, file)
	if err != nil {
		return nil, err
	}
	if content == "" {
		return nil, fmt.Errorf("%s: no content to write", path)
	}
	prev, err := read(path)
	if err != nil {
		return nil, err
	}
	if prev.exists && !owned {
		return nil, reconcile.Conflictf("CNI configuration %s is on the node and nodenet did not write it (%s); remove it, or give the pool another cni_file", path, prev.describe())
	}
	if prev.exists && !prev.regular {
		return nil, reconcile.Conflictf("CNI configuration %s is %s now, not the file nodenet wrote; remove it and apply again", path, prev.describe())
	}
	if prev.exists && prev.content == content {
		return nil, nil
	}
	if !prev.exists {
		var made []string
		return []dataplane.Step{{
			Change: dataplane.NewChange(pb.Change_ADD, "file", path, fmt.Sprintf("%d bytes", len(content))),
			Desc:   "file " + path,
			Do: func() error {
				// A file made by hand since the plan is not overwritten either.
				now, err := read(path)
				if err != nil {
					return err
				}
				if now.exists {
					return reconcile.Conflictf("CNI configuration %s appeared meanwhile (%s); nodenet did not write it", path, now.describe())
				}
				if made, err = mkdirs(dir); err != nil {
					return err
				}
				return atomicfile.Write(path, []byte(content), Mode)
			},
			Undo: func() error { return removeWith(path, made) },
		}}, nil
	}
	return []dataplane.Step{{
		Change: dataplane.NewChange(pb.Change_UPDATE, "file", path, fmt.Sprintf("%d -> %d bytes", len(prev.content), len(content))),
		Desc:   "file " + path,
		Do:     func() error { return atomicfile.Write(path, []byte(content), Mode) },
		Undo:   func() error { return atomicfile.Write(path, []byte(prev.content), prev.mode) },
	}}, nil
}

// DeleteSteps remove dir/file (none when it is not there); the undo writes it back. They are
// for a file the object owns: the caller checks that.
func DeleteSteps(dir, file string) ([]dataplane.Step, error) {
	path, err := Path(dir, file)
	if err != nil {
		return nil, err
	}
	prev, err := read(path)
	if err != nil || !prev.exists {
		return nil, err
	}
	if !prev.regular {
		return nil, reconcile.Conflictf("CNI configuration %s is %s now, not the file nodenet wrote; it is left as it is", path, prev.describe())
	}
	return []dataplane.Step{{
		Change: dataplane.NewChange(pb.Change_DELETE, "file", path, ""),
		Desc:   "file " + path,
		Do:     func() error { return removeWith(path, nil) },
		Undo:   func() error { return atomicfile.Write(path, []byte(prev.content), prev.mode) },
	}}, nil
}

// Observe returns what dir/file holds: "" when there is no such file. Anything but a regular
// file there is an error naming it.
func Observe(dir, file string) (string, error) {
	path, err := Path(dir, file)
	if err != nil {
		return "", err
	}
	f, err := read(path)
	if err != nil {
		return "", err
	}
	if f.exists && !f.regular {
		return "", fmt.Errorf("CNI configuration %s is %s, not a file", path, f.describe())
	}
	return f.content, nil
}

type state struct {
	exists, regular bool
	mode            fs.FileMode
	content         string
}

func (s state) describe() string {
	switch {
	case s.regular:
		return fmt.Sprintf("%d bytes", len(s.content))
	case s.mode&fs.ModeSymlink != 0:
		return "a symbolic link"
	case s.mode.IsDir():
		return "a directory"
	}
	return "a special file (" + s.mode.Type().String() + ")"
}

// read looks at path without following a symbolic link.
func read(path string) (state, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return state{}, nil
	}
	if err != nil {
		return state{}, err
	}
	s := state{exists: true, regular: fi.Mode().IsRegular(), mode: fi.Mode()}
	if !s.regular {
		return s, nil
	}
	s.mode = fi.Mode().Perm()
	b, err := os.ReadFile(path)
	if err != nil {
		return state{}, err
	}
	s.content = string(b)
	return s, nil
}

// mkdirs makes dir and its missing parents and returns the ones it made, deepest first.
func mkdirs(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return missing, nil
}

// removeWith removes path and then the directories dirs (deepest first) that are empty.
func removeWith(path string, dirs []string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, d := range dirs {
		if os.Remove(d) != nil {
			break // not empty: something else lives there now
		}
	}
	return nil
}
