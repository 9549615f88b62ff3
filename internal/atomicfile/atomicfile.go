// Package atomicfile writes files so that a reader (or a node that loses power) sees either
// the old content or the new, never a torn write.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes data to path: a temporary file in the same directory is written with mode,
// fsynced and renamed over path, then the directory is fsynced so the rename is durable.
func Write(path string, data []byte, mode os.FileMode) error {
	if err := write(path, data, mode, true); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteUnsynced is Write without the directory's fsync: a reader, or a node that loses
// power, still sees either the old content or the new (the data is fsynced before the
// rename), but after a power loss the rename may not have happened.
func WriteUnsynced(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, true)
}

// WriteVolatile writes data to path through a temporary file renamed over it, with no fsync
// at all: another process, or this one after a crash, sees the old content or the new, never
// a torn write; after a power loss the file may be torn or missing. For what only has to
// outlive the process, not the machine: fsyncs of writers on one disk queue for each other.
func WriteVolatile(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, false)
}

func write(path string, data []byte, mode os.FileMode, sync bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if sync {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// SyncDir fsyncs a directory, making a rename or removal in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
