// A Go program with the standard pprof endpoints and fgprof, for the end-to-end test of pyroscope.scrape
// (tests/goapp.rs). It listens on 127.0.0.1:0, prints "listening <addr>" on stdout, then one
// "request <uri>" line per request it receives, and keeps doing a little CPU, allocation, mutex and channel
// work so that every profile type has samples.
package main

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/felixge/fgprof"
)

var (
	mu   sync.Mutex
	sink [][]byte
	out  sync.Mutex
)

func logLine(format string, args ...interface{}) {
	out.Lock()
	defer out.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// burn hashes for about d: CPU samples land in it.
func burn(d time.Duration) {
	sum := sha256.Sum256([]byte("rill"))
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			sum = sha256.Sum256(sum[:])
		}
	}
}

// allocate keeps a bounded ring of fresh buffers: allocation samples land in it.
func allocate() {
	for i := 0; i < 64; i++ {
		b := make([]byte, 16<<10)
		b[0] = byte(i)
		if len(sink) >= 256 {
			sink = sink[1:]
		}
		sink = append(sink, b)
	}
}

// contend holds a mutex while another goroutine waits for it: mutex and block samples land here.
func contend(waiting chan struct{}, done chan struct{}) {
	mu.Lock()
	waiting <- struct{}{}
	time.Sleep(time.Millisecond)
	mu.Unlock()
	<-done
}

func main() {
	runtime.SetBlockProfileRate(1)
	runtime.SetMutexProfileFraction(1)

	http.Handle("/debug/fgprof", fgprof.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	logLine("listening %s", ln.Addr())

	// Light work: a few ms of CPU every 50 ms, so the program costs little on a shared machine.
	go func() {
		for {
			burn(5 * time.Millisecond)
			allocate()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	waiting, done := make(chan struct{}), make(chan struct{})
	go func() {
		for {
			contend(waiting, done)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() {
		for range waiting {
			mu.Lock()
			mu.Unlock()
			done <- struct{}{}
		}
	}()
	ch := make(chan int)
	go func() {
		for {
			time.Sleep(20 * time.Millisecond)
			ch <- 1
		}
	}()
	go func() {
		for range ch {
		}
	}()

	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logLine("request %s", r.RequestURI)
		http.DefaultServeMux.ServeHTTP(w, r)
	})
	if err := http.Serve(ln, logged); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}
