package app

import (
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/proxy/watcher"
)

// watcherCredentials returns the renewable credentials the configuration names for the
// execution watcher's polls (OAuth2 client credentials or a token file), or nil.
func watcherCredentials(w config.Watcher) watcher.Credentials {
	switch {
	case w.OAuth2.TokenURL != "":
		return watcher.NewOAuth2ClientCredentials(watcher.OAuth2Options{
			TokenURL: w.OAuth2.TokenURL, ClientID: w.OAuth2.ClientID, ClientSecret: w.OAuth2.ClientSecret,
			ClientSecretFile: w.OAuth2.ClientSecretFile, Scopes: w.OAuth2.Scopes, RefreshBefore: w.OAuth2.RefreshBefore.D(),
		})
	case w.TokenFile != "":
		return watcher.NewTokenFile(w.TokenFile)
	}
	return nil
}
