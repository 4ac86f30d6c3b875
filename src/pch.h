// Precompiled header: the heavy third-party headers every library part includes.
#pragma once
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
