package loadtest

import "testing"

func TestClusterRatioLine(t *testing.T) {
	for line, want := range map[string]string{
		"cluster ingest over 4000000 events in batches of 10000: plugin Write 31411 events/s, bare PrepareBatch 32578 events/s, ratio 0.964":                          "0.964",
		"(from the run that began the load) cluster ingest over 40000 events in batches of 10000: plugin Write 1 events/s, bare PrepareBatch 1 events/s, ratio 1.016": "1.016",
		"cluster load: 96000000 more events by 4 concurrent writers in 1h25m20s (18750 events/s); 100000000 events in all":                                            "",
	} {
		got := ""
		if m := clusterRatioOf.FindStringSubmatch("x\n" + line + "\ny"); m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("%q: ratio %q, want %q", line, got, want)
		}
	}
}
