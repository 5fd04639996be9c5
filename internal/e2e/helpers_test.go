package e2e

import (
	"time"

	"github.com/flowker-audit/flowker-audit/config"
)

type configT = config.Config

func configDuration(d time.Duration) config.Duration { return config.Duration(d) }
