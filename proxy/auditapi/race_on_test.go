//go:build race

package auditapi

const raceEnabled = true
