// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroupid

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"
)

// Resolver maps the IDs of one hierarchy to paths ("/docker/<id>", "/"
// for the root), from a cache filled by walking the hierarchy's mount.
//
// A miss walks the mount again, once: an ID that a walk after it was
// observed does not find belongs to a removed cgroup and never comes back
// (IDs are not reused), so it is remembered as unknown until Forget.
// Names learned elsewhere (a BPF program on cgroup_mkdir) are added with
// Add, which is how a cgroup removed before any walk still gets a path.
type Resolver struct {
	mount Mount

	mu      sync.Mutex
	byID    map[uint64]string
	unknown map[uint64]struct{}
	// walks counts walks, for tests and for the cost figures.
	walks int
}

// NewResolver returns a Resolver for the hierarchy mounted as m.
func NewResolver(m Mount) *Resolver {
	return &Resolver{
		mount:   m,
		byID:    make(map[uint64]string),
		unknown: make(map[uint64]struct{}),
	}
}

// Mount is the hierarchy this Resolver reads.
func (r *Resolver) Mount() Mount { return r.mount }

// Path returns the cgroup path of id.
func (r *Resolver) Path(id uint64) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.byID[id]; ok {
		return p, true
	}
	if _, ok := r.unknown[id]; ok {
		return "", false
	}
	// Errors leave the cache as it was; the id is then unknown.
	_ = r.walkLocked()
	if p, ok := r.byID[id]; ok {
		return p, true
	}
	r.unknown[id] = struct{}{}
	return "", false
}

// Known returns the path of id if the Resolver already knows it, without
// walking the hierarchy.
func (r *Resolver) Known(id uint64) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.byID[id]
	return p, ok
}

// Add records that id is the cgroup at p.
func (r *Resolver) Add(id uint64, p string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[id] = p
	delete(r.unknown, id)
}

// Forget drops what the Resolver knows of id, once its cgroup is gone and
// its counts are reaped.
func (r *Resolver) Forget(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byID, id)
	delete(r.unknown, id)
}

// Walks returns how many times the Resolver walked its mount.
func (r *Resolver) Walks() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.walks
}

// ID returns the ID of the cgroup at p, a path in this hierarchy, by
// stat(2): no cache, so it is exact for a cgroup just created.
func (r *Resolver) ID(p string) (uint64, error) {
	return ID(r.Dir(p))
}

// Dir returns the directory of the cgroup at p under the mount.
func (r *Resolver) Dir(p string) string {
	rel, err := filepath.Rel(r.mount.Root, path.Clean("/"+p))
	if err != nil {
		rel = p
	}
	return filepath.Join(r.mount.Dir, rel)
}

// ID returns the ID of the cgroup whose directory is dir: its inode
// number, which is what kernfs uses as the node's id on 64-bit kernels.
func ID(dir string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("reading cgroup id: %w", err)
	}
	return st.Ino, nil
}

func (r *Resolver) walkLocked() error {
	r.walks++
	root := r.mount.Dir
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A cgroup removed mid-walk: skip it, keep walking.
			if p != root {
				return fs.SkipDir
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fs.SkipDir
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil
		}
		cg := path.Join(r.mount.Root, "/", filepath.ToSlash(rel))
		r.byID[st.Ino] = cg
		delete(r.unknown, st.Ino)
		return nil
	})
}

// Exists reports whether the cgroup at p still exists.
func (r *Resolver) Exists(p string) bool {
	_, err := os.Stat(r.Dir(p))
	return err == nil
}
