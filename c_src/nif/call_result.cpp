// The client's result of an Azure call, read for the core (call_result.hpp).
#include "call_result.hpp"

#include <cstddef>

#include "atoms.hpp"
#include "terms.hpp"

namespace azmp::nif {

namespace {

// Azure's answer as the client decoded it: a batch of 25 items, a day's usageEvents rows of every
// subscription of a dimension (paged, summed: rows for thousands of subscriptions), a subscription.
// More than this is refused as a bad answer rather than walked on a scheduler.
constexpr std::size_t kMaxAnswerNodes = 2'000'000;
constexpr std::size_t kMaxAnswerBytes = 64 * 1024 * 1024;
// A batch's answer (25 items of a dozen fields) or a subscription: far within this.
constexpr std::size_t kMaxSmallAnswerNodes = 20'000;
constexpr std::size_t kMaxSmallAnswerBytes = 1024 * 1024;

}  // namespace

// {ok, Decoded} | {error, Reason} as emqx_azure_marketplace_client returns it. `json` keeps the
// answer the result points into.
bool read_call_result(ErlNifEnv* env, ERL_NIF_TERM t, AnswerSize size, CallReport& out,
                      std::optional<boost::json::value>& json) {
    if (enif_is_identical(t, atoms::ok)) {  // a call answered without a body (Activate, a PATCH)
        out = CallReport{CallKind::Answered, 200, nullptr};
        return true;
    }
    int arity;
    const ERL_NIF_TERM* e;
    if (!enif_get_tuple(env, t, &arity, &e) || arity != 2) return false;
    if (enif_is_identical(e[0], atoms::ok)) {
        JsonBudget budget = size == AnswerSize::Large ? JsonBudget{kMaxAnswerNodes, kMaxAnswerBytes}
                                                      : JsonBudget{kMaxSmallAnswerNodes, kMaxSmallAnswerBytes};
        json = term_to_json(env, e[1], budget);
        // An answer we cannot take whole is no answer we can read: Azure may have taken the call.
        out = json ? CallReport{CallKind::Answered, 200, &*json} : CallReport{CallKind::Answered, 200, nullptr};
        return true;
    }
    if (!enif_is_identical(e[0], atoms::error)) return false;
    Failure failure = Failure::Other;
    int status = 0;
    const ERL_NIF_TERM reason = e[1];
    const ERL_NIF_TERM* r;
    if (enif_is_identical(reason, atoms::timeout)) failure = Failure::Timeout;
    else if (enif_is_identical(reason, atoms::overloaded)) failure = Failure::Overloaded;
    else if (enif_get_tuple(env, reason, &arity, &r) && arity >= 2) {
        if (enif_is_identical(r[0], atoms::transport)) failure = Failure::Transport;
        else if (enif_is_identical(r[0], atoms::bad_response)) failure = Failure::BadResponse;
        else if (enif_is_identical(r[0], atoms::auth)) failure = Failure::Auth;
        else if (enif_is_identical(r[0], atoms::badarg)) failure = Failure::Badarg;
        else if (enif_is_identical(r[0], atoms::http)) {
            failure = Failure::Http;
            if (!enif_get_int(env, r[1], &status)) status = 0;
        }
    }
    out = CallReport{call_kind(failure, status), status, nullptr, failure};
    return true;
}

}  // namespace azmp::nif
