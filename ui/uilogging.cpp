#include "uilogging.h"

Q_LOGGING_CATEGORY(lcUi, "keyrelay.ui", QtInfoMsg)
Q_LOGGING_CATEGORY(lcTray, "keyrelay.tray", QtInfoMsg)
Q_LOGGING_CATEGORY(lcInstance, "keyrelay.instance", QtInfoMsg)
