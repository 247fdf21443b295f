package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
)

func init() {
	if a := os.Getenv("MOMGATE_BENCH_PPROF"); a != "" {
		runtime.MemProfileRate = 4096
		go http.ListenAndServe(a, nil)
	}
}
