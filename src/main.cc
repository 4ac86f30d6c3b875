// ganglion: the command line. The only file not linked into the tests.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "config/config.h"
#include "llm/tokenizer/tokens_command.h"
#include "server/config_loader.h"
#include "server/gateway.h"
#include "server/snapshot.h"

namespace {

/// `ganglion check`: loads and builds the config as `serve` would, and says what is wrong.
int runCheck(const std::string& config_path) {
  auto loaded = ganglion::server::loadConfigFile(config_path);
  std::vector<ganglion::config::ConfigError> errors = loaded.errors;
  // Not an error (a directory may be made or mounted before `serve`), but said: serve would
  // refuse every acknowledged reading while edge.data_dir cannot hold its files.
  std::string data_dir_warning;
  if (loaded.config && !loaded.config->edge.empty()) {
    std::filesystem::path dir(loaded.config->edge.settings.data_dir);
    if (dir.is_relative()) dir = std::filesystem::path(config_path).parent_path() / dir;
    std::error_code ec;
    if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
      data_dir_warning = "warning: edge.data_dir " + dir.string() +
                         " is not a directory: until it is, readings whose sender waits for an "
                         "acknowledgement are refused (503 not_stored)\n";
  }
  if (loaded.config) {
    ganglion::server::HealthRegistry health;
    auto built = ganglion::server::buildSnapshot(std::move(*loaded.config), 1, health);
    errors = built.errors;
  }
  for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.text().c_str());
  if (!errors.empty()) {
    std::fprintf(stderr, "%zu error(s) in %s\n", errors.size(), config_path.c_str());
    return 1;
  }
  std::fputs(data_dir_warning.c_str(), stderr);
  std::printf("%s: config ok\n", config_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Blocks of 1 MiB and up (large request bodies, their parsed form) come from mmap and go
  // back to the system when freed. glibc's default threshold rises after each such free, up
  // to 32 MiB, so a burst of large requests would otherwise stay resident for good.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  CLI::App app{"Ganglion: an API, LLM and edge AI gateway."};
  app.set_version_flag("-V,--version", std::string("ganglion ") + GANGLION_VERSION);
  app.require_subcommand(1);

  std::string config_path;
  auto* serve = app.add_subcommand("serve", "Run the gateway");
  serve->add_option("-c,--config", config_path, "YAML config file")->required();
  auto* check = app.add_subcommand("check", "Validate a config file and print every error");
  check->add_option("-c,--config", config_path, "YAML config file")->required();

  ganglion::llm::tokenizer::TokensOptions tokens_options;
  auto* tokens =
      app.add_subcommand("tokens", "Count the tokens of stdin as an OpenAI model would (exact BPE)");
  auto* encoding = tokens->add_option("-e,--encoding", tokens_options.encoding, "o200k_base or cl100k_base");
  tokens->add_option("-m,--model", tokens_options.model, "an OpenAI model id (gpt-4o, gpt-4, ...)")
      ->excludes(encoding);
  tokens->add_flag("--ids", tokens_options.ids, "print the token ids instead of the count");
  tokens->add_flag("--batch", tokens_options.batch,
                   "stdin holds records (u32 LE length + bytes); one line each");

  CLI11_PARSE(app, argc, argv);

  if (tokens->parsed()) {
    if (tokens_options.encoding.empty() && tokens->count("--model") == 0)
      tokens_options.encoding = "o200k_base";
    return ganglion::llm::tokenizer::runTokensCommand(tokens_options, stdin, stdout, stderr);
  }

  if (check->parsed()) return runCheck(config_path);
  ganglion::server::Gateway gateway(config_path, std::vector<std::string>(argv, argv + argc));
  return gateway.run();
}
