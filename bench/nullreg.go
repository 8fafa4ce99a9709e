// Build: GO111MODULE=off go build -o /tmp/nullreg bench/nullreg.go; run: /tmp/nullreg 127.0.0.1:PORT IMG/blobs/sha256
// (used for the skopeo lower bound in docs/benchmarks.md; not part of bench/registry.sh).
// A registry that does no work: pushed blob bytes are read and dropped (only sizes are
// kept), pulled blobs are sent by sendfile from the source OCI layout, nothing is hashed
// or verified. The lower bound any server can give a skopeo push/pull on this machine.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
)

type manifest struct {
	mt   string
	body []byte
}

var (
	mu        sync.Mutex
	blobs     = map[string]int64{}
	uploads   = map[string]int64{}
	manifests = map[string]manifest{}
	next      = 0
)

func split(p string) (name, kind, last string) {
	p = strings.TrimPrefix(p, "/v2/")
	for _, k := range []string{"/blobs/uploads/", "/blobs/", "/manifests/"} {
		if i := strings.LastIndex(p, k); i >= 0 {
			return p[:i], k, p[i+len(k):]
		}
	}
	return "", "", ""
}

func handler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		w.WriteHeader(200)
		return
	}
	name, kind, last := split(r.URL.Path)
	switch {
	case kind == "/blobs/uploads/" && r.Method == http.MethodPost:
		mu.Lock()
		next++
		id := fmt.Sprintf("u%d", next)
		n, _ := io.Copy(io.Discard, r.Body)
		uploads[id] = n
		mu.Unlock()
		w.Header().Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
		w.Header().Set("Range", "0-0")
		w.WriteHeader(202)
	case kind == "/blobs/uploads/" && r.Method == http.MethodPatch:
		c, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		uploads[last] += c
		n := uploads[last]
		mu.Unlock()
		w.Header().Set("Location", "/v2/"+name+"/blobs/uploads/"+last)
		w.Header().Set("Range", fmt.Sprintf("0-%d", n-1))
		w.WriteHeader(202)
	case kind == "/blobs/uploads/" && r.Method == http.MethodPut:
		c, _ := io.Copy(io.Discard, r.Body)
		d := r.URL.Query().Get("digest")
		mu.Lock()
		blobs[d] = uploads[last] + c
		delete(uploads, last)
		mu.Unlock()
		w.Header().Set("Location", "/v2/"+name+"/blobs/"+d)
		w.Header().Set("Docker-Content-Digest", d)
		w.WriteHeader(201)
	case kind == "/blobs/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		mu.Lock()
		n, ok := blobs[last]
		mu.Unlock()
		if !ok {
			w.WriteHeader(404)
			return
		}
		w.Header().Set("Docker-Content-Digest", last)
		w.Header().Set("Content-Length", fmt.Sprint(n))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(200)
		if r.Method == http.MethodGet {
			f, err := os.Open(os.Args[2] + "/" + strings.TrimPrefix(last, "sha256:"))
			if err == nil {
				io.Copy(w, f) // sendfile(2) via net.TCPConn.ReadFrom
				f.Close()
			}
		}
	case kind == "/manifests/" && r.Method == http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		m := manifest{r.Header.Get("Content-Type"), b}
		mu.Lock()
		manifests[name+"@"+last] = m
		manifests[name+"@"+d] = m
		mu.Unlock()
		w.Header().Set("Location", "/v2/"+name+"/manifests/"+d)
		w.Header().Set("Docker-Content-Digest", d)
		w.WriteHeader(201)
	case kind == "/manifests/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		mu.Lock()
		m, ok := manifests[name+"@"+last]
		mu.Unlock()
		if !ok {
			w.WriteHeader(404)
			return
		}
		w.Header().Set("Content-Type", m.mt)
		w.Header().Set("Docker-Content-Digest", fmt.Sprintf("sha256:%x", sha256.Sum256(m.body)))
		w.Header().Set("Content-Length", fmt.Sprint(len(m.body)))
		w.WriteHeader(200)
		if r.Method == http.MethodGet {
			w.Write(m.body)
		}
	default:
		w.WriteHeader(404)
	}
}

func main() {
	http.ListenAndServe(os.Args[1], http.HandlerFunc(handler)) // args: ADDR BLOBDIR
}
