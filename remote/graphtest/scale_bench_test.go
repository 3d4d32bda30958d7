package graphtest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// The scale benchmark: a generated drive (by default 1,000 folders of 100
// files; `make bench BENCH_GENERATE=folders=10000,files=100` for the
// issue's million items), its seeding time and the fake's heap, then what a
// first full sync costs a client in requests and time, done both ways:
// delta from no token (paged, at the service's default page size and at the
// largest $top), and one children listing per folder; and a delta poll
// with nothing new. Figures are reported, never asserted.
//
//	ONEDRIVEFS_BENCH_GENERATE=folders=10000,files=100 go test -run '^$' -bench Scale -benchtime 1x ./remote/graphtest/

func scaleSpec(b *testing.B) graphtest.GenerateSpec {
	v := os.Getenv("ONEDRIVEFS_BENCH_GENERATE")
	if v == "" {
		v = "folders=1000,files=100"
	}
	spec, err := graphtest.ParseGenerateSpec(v)
	if err != nil {
		b.Fatalf("ONEDRIVEFS_BENCH_GENERATE: %v", err)
	}
	return spec
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func BenchmarkScaleGenerated(b *testing.B) {
	spec := scaleSpec(b)
	before := heapInUse()
	srv := graphtest.NewServer(graphtest.Options{})
	defer srv.Close()
	start := time.Now()
	if err := srv.Generate(spec); err != nil {
		b.Fatal(err)
	}
	seed := time.Since(start)
	heap := heapInUse() - before
	b.Logf("generated %s (%d items) in %s; fake's heap %.0f MiB (%.0f B/item)",
		spec, spec.Items(), seed.Round(time.Millisecond), float64(heap)/(1<<20), float64(heap)/float64(spec.Items()))

	c := &syncClient{b: b, srv: srv, hc: srv.Client(), token: srv.IssueToken()}
	for b.Loop() {
		var deltaLink string
		for _, top := range []int{0, 1000} {
			srv.ResetStats()
			start := time.Now()
			items, first, link := c.deltaFull(top)
			d := time.Since(start)
			req := srv.Stats().RequestsTotal
			b.Logf("first sync by delta ($top=%d): %d items, %d requests, %s (first page %s, the others %s on average)",
				top, items, req, d.Round(time.Millisecond), first.Round(time.Millisecond),
				((d - first) / time.Duration(max(req-1, 1))).Round(time.Microsecond))
			b.ReportMetric(float64(req), fmt.Sprintf("delta-top%d-requests", top))
			b.ReportMetric(d.Seconds(), fmt.Sprintf("delta-top%d-s", top))
			deltaLink = link
		}
		start := time.Now()
		p := c.get(deltaLink)
		b.Logf("a delta poll with no change: %d items in %s", len(p.Value), time.Since(start).Round(time.Microsecond))
		srv.ResetStats()
		start = time.Now()
		items := c.childrenWalk()
		d := time.Since(start)
		req := srv.Stats().RequestsTotal
		b.Logf("first sync by children ($top=1000, one listing a folder): %d items, %d requests, %s", items, req, d.Round(time.Millisecond))
		b.ReportMetric(float64(req), "children-requests")
		b.ReportMetric(d.Seconds(), "children-s")

		srv.ResetStats()
		start = time.Now()
		n := c.download("/" + graphtest.GeneratedFolderName(spec.Folders) + "/" + graphtest.GeneratedFileName(spec.FilesPerFolder))
		b.Logf("download of the last file: %d bytes in %s", n, time.Since(start).Round(time.Microsecond))
	}
	b.ReportMetric(seed.Seconds(), "seed-s")
	b.ReportMetric(float64(heap)/(1<<20), "fake-heap-MiB")
}

// syncClient is the least a client does to enumerate a drive over HTTP.
type syncClient struct {
	b     *testing.B
	srv   *graphtest.Server
	hc    *http.Client
	token string
}

type syncPage struct {
	Value []struct {
		ID     string    `json:"id"`
		Folder *struct{} `json:"folder"`
	} `json:"value"`
	NextLink  string `json:"@odata.nextLink"`
	DeltaLink string `json:"@odata.deltaLink"`
}

func (c *syncClient) get(u string) *syncPage {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		c.b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		c.b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		c.b.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	var p syncPage
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		c.b.Fatal(err)
	}
	return &p
}

// deltaFull enumerates the drive with delta from no token; top 0 is the
// service's default page size. It returns the number of items, the time
// the first page took (the fake orders the whole round then) and the
// deltaLink.
func (c *syncClient) deltaFull(top int) (int, time.Duration, string) {
	u := c.srv.GraphURL() + "/me/drive/root/delta"
	if top > 0 {
		u += "?$top=" + strconv.Itoa(top)
	}
	n := 0
	start := time.Now()
	var first time.Duration
	for {
		p := c.get(u)
		if first == 0 {
			first = time.Since(start)
		}
		n += len(p.Value)
		if p.NextLink == "" {
			if p.DeltaLink == "" {
				c.b.Fatal("delta: last page without deltaLink")
			}
			return n, first, p.DeltaLink
		}
		u = p.NextLink
	}
}

// childrenWalk lists every folder's children, breadth first.
func (c *syncClient) childrenWalk() int {
	queue := []string{"root"}
	n := 1
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		u := c.srv.GraphURL() + "/me/drive/items/" + id + "/children?$top=1000"
		for u != "" {
			p := c.get(u)
			for _, v := range p.Value {
				n++
				if v.Folder != nil {
					queue = append(queue, v.ID)
				}
			}
			u = p.NextLink
		}
	}
	return n
}

// download fetches a file's content through its pre-authenticated URL.
func (c *syncClient) download(path string) int64 {
	it, ok := c.srv.ItemByPath(path)
	if !ok {
		c.b.Fatalf("%s: not found", path)
	}
	hc := *c.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest(http.MethodGet, c.srv.GraphURL()+"/me/drive/items/"+it.ID+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := hc.Do(req)
	if err != nil {
		c.b.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.hc.Get(resp.Header.Get("Location"))
	if err != nil {
		c.b.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK || n != it.Size {
		c.b.Fatalf("download: %d, %d bytes of %d", resp.StatusCode, n, it.Size)
	}
	return n
}
