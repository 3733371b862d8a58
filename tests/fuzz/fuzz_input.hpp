// Splitting one fuzz input into the pieces a target needs (a selector byte, a header, a body), so
// that libFuzzer's mutations reach every piece from one byte string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace azmp::fuzz {

class Input {
public:
    Input(const std::uint8_t* data, std::size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}

    // The next byte (0 once the input is used up).
    std::uint8_t byte() {
        if (rest_.empty()) return 0;
        const auto b = static_cast<std::uint8_t>(rest_.front());
        rest_.remove_prefix(1);
        return b;
    }

    // Up to the next newline (dropped), or everything left.
    std::string_view line() {
        const auto nl = rest_.find('\n');
        std::string_view out = rest_.substr(0, nl);
        rest_.remove_prefix(nl == std::string_view::npos ? rest_.size() : nl + 1);
        return out;
    }

    std::string_view rest() const { return rest_; }

private:
    std::string_view rest_;
};

}  // namespace azmp::fuzz
