package metastore

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

// BenchmarkStoreScale fills a store with a drive of, by default, 1,000
// folders of 100 files (ONEDRIVEFS_BENCH_GENERATE=folders=10000,files=100,
// or `make bench BENCH_GENERATE=…`, for the 1,010,000 items), in
// transactions of 100 folders, and prints the time it took, the file's
// size and the heap in use; then it measures reading the root's children,
// a lookup by name, a walk of the whole tree, and reopening the store and
// listing the root (what a remount does). Figures are read, never
// asserted.
//
//	go test -run '^$' -bench StoreScale ./metastore/
func BenchmarkStoreScale(b *testing.B) {
	folders, files := 1_000, 100
	if v := os.Getenv("ONEDRIVEFS_BENCH_GENERATE"); v != "" {
		if _, err := fmt.Sscanf(v, "folders=%d,files=%d", &folders, &files); err != nil {
			b.Fatalf("ONEDRIVEFS_BENCH_GENERATE=%q: want folders=N,files=M", v)
		}
	}
	total := folders * (1 + files)
	path := filepath.Join(b.TempDir(), "meta.db")
	s, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()

	heapBefore := heapInUse()
	start := time.Now()
	const foldersPerTx = 100
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	rootItem := &remote.Item{ID: "B7D2A1C3E4F50617!1", Name: "root", IsFolder: true, IsRoot: true, DriveID: "b7d2a1c3e4f50617"}
	if err := s.ApplyDelta([]*remote.Item{rootItem}, ""); err != nil {
		b.Fatal(err)
	}
	next := 2
	newItem := func(parent, name string, isFolder bool) *remote.Item {
		id := fmt.Sprintf("B7D2A1C3E4F50617!%d", next)
		next++
		it := &remote.Item{ID: id, Name: name, ParentID: parent, IsFolder: isFolder, DriveID: "b7d2a1c3e4f50617",
			ETag: `"{` + id + `},1"`, CTag: `"c:{` + id + `},1"`, Created: now, Modified: now, FSCreated: now, FSModified: now,
			WebURL: "https://onedrive.live.com/?id=" + id}
		if !isFolder {
			it.Size, it.QuickXorHash, it.MimeType = 64, "aCgDG9jwBhDc4Q1yawMZAAAAAAA=", "text/plain"
		}
		return it
	}
	for f0 := 0; f0 < folders; f0 += foldersPerTx {
		err := s.Update(func(tx *Tx) error {
			for f := f0; f < min(f0+foldersPerTx, folders); f++ {
				dir := newItem(rootItem.ID, fmt.Sprintf("folder-%05d", f+1), true)
				if err := tx.Put(dir); err != nil {
					return err
				}
				for j := range files {
					if err := tx.Put(newItem(dir.ID, fmt.Sprintf("file-%05d.txt", j+1), false)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetDeltaLink("https://graph.invalid/delta?token=x") }); err != nil {
		b.Fatal(err)
	}
	fill := time.Since(start)
	size, _ := s.Size()
	var used int64
	_ = s.View(func(tx *ReadTx) error { used = tx.tx.Size(); return nil })
	heap := heapInUse() - min(heapBefore, heapInUse())
	// Printed, not logged: a parent benchmark's log is not shown.
	fmt.Printf("BenchmarkStoreScale: put %d items (%d folders of %d files, %d folders a transaction) in %s (%.0f items/s); file %.0f MiB (%.0f B/item, %.0f MiB in use); heap in use %.1f MiB; RSS %s",
		total+1, folders, files, foldersPerTx, fill.Round(time.Millisecond), float64(total)/fill.Seconds(),
		float64(size)/(1<<20), float64(size)/float64(total+1), float64(used)/(1<<20), float64(heap)/(1<<20), rss())
	fmt.Println()

	b.Run("root-children", func(b *testing.B) {
		for b.Loop() {
			kids, err := s.Children(rootItem.ID)
			if err != nil || len(kids) != folders {
				b.Fatalf("%d children, %v", len(kids), err)
			}
		}
	})
	b.Run("child-by-name", func(b *testing.B) {
		dir, err := s.Child(rootItem.ID, fmt.Sprintf("FOLDER-%05d", folders/2+1))
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.Child(dir.ID, fmt.Sprintf("File-%05d.TXT", files/2+1)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			n := 0
			err := s.View(func(tx *ReadTx) error {
				return tx.Walk(func(string, *remote.Item) error { n++; return nil })
			})
			if err != nil || n != total+1 {
				b.Fatalf("walked %d of %d, %v", n, total+1, err)
			}
		}
		b.ReportMetric(float64(total+1)*float64(b.N)/b.Elapsed().Seconds(), "items/s")
		b.Logf("RSS after walking: %s", rss())
	})
	b.Run("reopen-root-children", func(b *testing.B) {
		for b.Loop() {
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			if s, err = Open(path); err != nil {
				b.Fatal(err)
			}
			kids, err := s.Children(rootItem.ID)
			if err != nil || len(kids) != folders {
				b.Fatalf("%d children, %v", len(kids), err)
			}
		}
	})
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// rss is the process's resident set: VmRSS, and its anonymous (heap,
// stacks) and file-backed (the store's mapped pages: page cache the kernel
// can reclaim) parts; "?" where /proc is missing.
func rss() string {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	var parts []string
	for _, line := range strings.Split(string(raw), "\n") {
		for _, k := range []string{"VmRSS:", "RssAnon:", "RssFile:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				parts = append(parts, k+" "+strings.Join(strings.Fields(v), " "))
			}
		}
	}
	return strings.Join(parts, ", ")
}
