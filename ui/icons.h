// Icons drawn at run time, so the tray shows the proxy's state without image files per state.
#pragma once

#include <QIcon>

namespace keyrelay {

enum class IndicatorState { Running, Degraded, Stopped, Error };

namespace icons {
/// A key on a rounded square: blue when running, amber with a mark when running with problems, grey with a
/// pause mark when stopped, red with an exclamation mark when failed.
QIcon stateIcon(IndicatorState state);
/// The application icon (the SVG shipped in resources, or the running variant).
QIcon appIcon();
} // namespace icons

} // namespace keyrelay
