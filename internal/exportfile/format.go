// Package exportfile is the verifiable NDJSON export of the audit API
// (GET /v1/audit-events/export?format=ndjson): how it is written, and how it is checked offline
// (flowker-audit verify --source FILE).
//
// The file is one JSON object per line:
//
//	{"exportHeader":{...}}      first line: format, version, filters, sort order, time of export
//	{"eventId":...}             one line per event, exactly the API's event JSON (hashable as is)
//	{"exportChain":{...}}       after the events, one line per chain present: its count, first and
//	                            last sequence, and the signed checkpoint chosen for it (if any)
//	{"exportEnd":{...}}         last line: the number of events and chains; its absence means the
//	                            download was cut short
//
// An export filtered only by time (or not at all) holds every stored event of each chain between
// its first and last sequence: it is checked as a chain (every hash, every link, no gap). An
// export filtered by type, action, result, resource or actor is not a contiguous chain: each
// event's hash is recomputed, and a link is checked wherever both of its ends are present;
// missing sequences are expected and never reported as a broken chain.
package exportfile

import (
	"time"

	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
)

// Format and Version identify the file.
const (
	Format  = "flowker-audit-export"
	Version = 1
)

// Header is the first line.
type Header struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	ExportedAt time.Time `json:"exportedAt"`
	// Filters are the search parameters of the export, by API name (eventType, actorId, ...).
	Filters map[string]string `json:"filters"`
	// SortOrder is ASC or DESC: the order of the event lines by (timestamp, chainId, sequence).
	SortOrder string `json:"sortOrder"`
	// Contiguous is true when the filters select whole runs of each chain (none, or a time range
	// only): then every sequence between a chain's first and last exported event is present.
	Contiguous bool `json:"contiguous"`
}

// ContiguousFilters are the filter parameters that keep each chain contiguous in an export.
var ContiguousFilters = map[string]bool{"dateFrom": true, "dateTo": true}

// ChainRange is written after the events, one per chain present.
type ChainRange struct {
	ChainID       string `json:"chainId"`
	Count         uint64 `json:"count"`
	FirstSequence uint64 `json:"firstSequence"`
	LastSequence  uint64 `json:"lastSequence"`
	// Checkpoint is the newest signed checkpoint of the chain whose sequence lies in
	// [FirstSequence, LastSequence] (so the export itself holds the event it signs, when that
	// event matches the filters); when none does, the oldest one signed after LastSequence. Nil
	// when the sidecar has no checkpoint log or no checkpoint of this chain.
	Checkpoint *checkpoint.Checkpoint `json:"checkpoint"`
}

// End is the last line.
type End struct {
	Events uint64 `json:"events"`
	Chains int    `json:"chains"`
}

// line is any non-event line.
type line struct {
	Header *Header     `json:"exportHeader,omitempty"`
	Chain  *ChainRange `json:"exportChain,omitempty"`
	End    *End        `json:"exportEnd,omitempty"`
}
