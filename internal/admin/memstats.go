package admin

// OpMemStats runs a garbage collection in the daemon and reports its
// memory: no args -> MemStats. For capacity planning and the scale
// measurements; not a qmgr directive.
const OpMemStats = "mem_stats"

// MemStats is the result of OpMemStats, taken right after a collection.
type MemStats struct {
	HeapAlloc   uint64 `json:"heap_alloc"`  // bytes of live heap objects
	HeapInuse   uint64 `json:"heap_inuse"`  // bytes in in-use heap spans
	StackInuse  uint64 `json:"stack_inuse"` // bytes of goroutine stacks
	Sys         uint64 `json:"sys"`         // bytes obtained from the OS
	Goroutines  int    `json:"goroutines"`
	Nodes       int    `json:"nodes"`       // registered nodes (server) or admitted peers (MOM)
	Connections int    `json:"connections"` // open control connections (server)
}
