// Package smoke proves that each real server the suite tests against works
// through the client library the helpers use: Vault through
// hashicorp/vault/api, Consul through hashicorp/consul/api, VictoriaLogs
// (standing in for Elasticsearch's bulk API) through olivere/elastic/v7.
package smoke
