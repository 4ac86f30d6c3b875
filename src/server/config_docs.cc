#include "server/config_docs.h"

#include "admin/admin_config.h"
#include "config/schema.h"
#include "edge/edge_config.h"
#include "filters/registry.h"
#include "http/static_site.h"
#include "llm/llm_schema.h"
#include "net/tls_config.h"
#include "server/config_sections.h"
#include "server/listener_config.h"
#include "upstream/upstream_schema.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section

std::vector<DocsTable> schemaDocsTables() {
  std::vector<DocsTable> tables{{"top_level", docsTable(topLevelSchema())},
                                {"listener", docsTable(listenerSchema())},
                                {"listener_tls", docsTable(net::tlsServerSchema())},
                                {"certificate", docsTable(net::certificateSchema())},
                                {"upstream_tls", docsTable(net::tlsClientSchema())},
                                {"admin", docsTable(admin::adminSchema())},
                                {"access_log", docsTable(accessLogSchema())},
                                {"llm_cache", docsTable(llm::llmCacheSchema())},
                                {"upstream", docsTable(upstream::upstreamSchema())},
                                {"target", docsTable(upstream::targetSchema())},
                                {"health_check", docsTable(upstream::healthCheckSchema())},
                                {"outlier", docsTable(upstream::outlierSchema())},
                                {"retry_budget", docsTable(upstream::retryBudgetSchema())},
                                {"route", docsTable(config::routeSchema())},
                                {"match", docsTable(config::matchSchema())},
                                {"static", docsTable(http::staticFilesSchema())},
                                {"state", docsTable(config::stateSchema())},
                                {"key", docsTable(config::keySchema())},
                                {"provider", docsTable(llm::providerSchema())},
                                {"model", docsTable(llm::modelSchema())},
                                {"model_target", docsTable(llm::modelTargetSchema())},
                                {"circuit_breaker", docsTable(llm::circuitBreakerSchema())},
                                {"connector", docsTable(edge::connectorSchema())},
                                {"connector_subscribe", docsTable(edge::mqttSubscriptionSchema())},
                                {"connector_reconnect", docsTable(edge::reconnectSchema())},
                                {"connector_outbox", docsTable(edge::connectorOutboxSchema())},
                                {"connector_registers", docsTable(edge::modbusRegisterSchema())},
                                {"connector_observe", docsTable(edge::coapObserveSchema())},
                                {"connector_psk", docsTable(edge::coapPskSchema())},
                                {"connector_dtls", docsTable(edge::coapDtlsSchema())},
                                {"sink", docsTable(edge::sinkSchema())},
                                {"sink_batch", docsTable(edge::sinkBatchSchema())},
                                {"sink_queue", docsTable(edge::sinkQueueSchema())},
                                {"sink_retry", docsTable(edge::sinkRetrySchema())},
                                {"pipeline", docsTable(edge::pipelineSchema())},
                                {"pipeline_device_limit", docsTable(edge::deviceLimitSchema())},
                                {"window", docsTable(edge::windowSchema())},
                                {"detect", docsTable(edge::detectSchema())},
                                {"map", docsTable(edge::mapSchema())},
                                {"deadband", docsTable(edge::deadbandSchema())},
                                {"dedup", docsTable(edge::dedupSchema())},
                                {"downsample", docsTable(edge::downsampleSchema())},
                                {"fft", docsTable(edge::fftSchema())},
                                {"join", docsTable(edge::joinSchema())},
                                {"join_with", docsTable(edge::joinPartnerSchema())},
                                {"rule", docsTable(edge::ruleSchema())},
                                {"rule_publish", docsTable(edge::rulePublishSchema())},
                                {"rule_summarize", docsTable(edge::ruleSummarizeSchema())},
                                {"rule_webhook", docsTable(edge::ruleWebhookSchema())},
                                {"rule_write", docsTable(edge::ruleWriteSchema())},
                                {"edge", docsTable(edge::edgeSettingsSchema())}};
  for (auto& f : filters::filterDocsTables()) tables.push_back({f.kind, std::move(f.table)});
  return tables;
}

}  // namespace ganglion::server
