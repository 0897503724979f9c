#include "logging.h"

Q_LOGGING_CATEGORY(lcServer, "keyrelay.server", QtInfoMsg)
Q_LOGGING_CATEGORY(lcForward, "keyrelay.forward", QtInfoMsg)
Q_LOGGING_CATEGORY(lcKeys, "keyrelay.keys", QtInfoMsg)
Q_LOGGING_CATEGORY(lcRewrite, "keyrelay.rewrite", QtInfoMsg)
Q_LOGGING_CATEGORY(lcSettings, "keyrelay.settings", QtInfoMsg)
