package server

import (
	"runtime"

	"github.com/momgate/momgate/internal/admin"
)

// memStats collects garbage and reports the server's memory.
func (s *Server) memStats() *admin.MemStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mu.Lock()
	nodes, conns := len(s.reg.byName), len(s.conns)
	s.mu.Unlock()
	return &admin.MemStats{HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Sys: ms.Sys,
		Goroutines: runtime.NumGoroutine(), Nodes: nodes, Connections: conns}
}
