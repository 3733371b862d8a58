// Fields of Azure's SaaS Fulfillment answers and webhook bodies, read once, here, strictly: an id, a
// seat quantity, a subscription term, an operation's time. Whatever does not read as what it
// should be is absent. The workflow steps (webhook_step.hpp, link_step.hpp) build on these.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace azmp {

// The member `key` of `v` when `v` is an object that has it (and it is not null); else nullptr.
const boost::json::value* field(const boost::json::value* v, std::string_view key) noexcept;

// An id (a subscription, plan, operation or action name): a string valid_id accepts.
std::optional<std::string> read_id(const boost::json::value* v);

// A seat quantity: a whole number 1..2^53 (a JSON number, or a numeric string as Azure sometimes
// sends). A fraction, zero, a negative number or text is absent.
std::optional<std::int64_t> read_quantity(const boost::json::value* v) noexcept;

// The three fields of a subscription's term the product keeps (metering's term start and length),
// as Azure wrote them, and only when metering::parse_term reads them as a term.
struct TermFields {
    std::string start_date, end_date, term_unit;
    bool operator==(const TermFields&) const = default;
};
// `v`: the `term` object itself.
std::optional<TermFields> read_term(const boost::json::value* v);

// An operation's timeStamp (parse_azure_time's forms) in unix milliseconds.
std::optional<std::int64_t> read_time_ms(const boost::json::value* v) noexcept;

}  // namespace azmp
