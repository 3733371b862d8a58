%% Shared by the emulator suites and their support modules.

%% The Azure Marketplace SaaS application id: the audience of access tokens.
-define(APP, <<"20e940b3-4c77-4b0b-9a53-9e16a1b010a7">>).
-define(V, "?api-version=2018-08-31").
