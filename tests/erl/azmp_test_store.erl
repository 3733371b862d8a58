%% @doc Test-only reads of the plugin's store that the product has no use for.
-module(azmp_test_store).

-export([usage_all/0]).

%% @doc Every hour of the ledger, in RAM and in the history (tests and the demo compare the ledger
%% with Azure): the ledger's rows over all time.
-spec usage_all() -> [map()].
usage_all() -> emqx_azure_marketplace_store_usage_history:usage_between(-(1 bsl 59), 1 bsl 59).
