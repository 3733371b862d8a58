// The metering decimal parser (parse_decimal): a quantity as text. What it accepts must survive
// format_decimal and parse back to the same micro-units.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "azmp/metering.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace azmp::metering;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto m = parse_decimal(text);
    if (!m) return 0;
    if (*m < 0) std::abort();
    auto back = parse_decimal(format_decimal(*m));
    if (!back || *back != *m) std::abort();
    return 0;
}
