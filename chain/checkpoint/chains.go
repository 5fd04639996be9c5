package checkpoint

import "sort"

// Chains returns the chain ids that cps mention, sorted.
func Chains(cps []Checkpoint) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range cps {
		if !seen[c.ChainID] {
			seen[c.ChainID] = true
			out = append(out, c.ChainID)
		}
	}
	sort.Strings(out)
	return out
}
