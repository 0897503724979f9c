// The tray icon: shows the proxy's state and asks for actions through signals; it owns no logic.
#pragma once

#include "icons.h"
#include "notificationlimiter.h"

#include <QObject>
#include <QPointer>
#include <QSystemTrayIcon>
#include <QTimer>

class QAction;
class QMenu;

namespace keyrelay {

class ServiceStatus;

class TrayIcon : public QObject
{
    Q_OBJECT
public:
    explicit TrayIcon(QObject *parent = nullptr);
    ~TrayIcon() override;

    /// Shows the icon once a system tray exists, checking up to @p attempts times, @p intervalMs apart
    /// (desktops often start their tray after the apps of the session). Emits ready() or unavailable().
    void install(int attempts = 5, int intervalMs = 1000);
    bool isInstalled() const { return m_installed; }

    /// Icon, tooltip and menu follow @p status from now on (the window shows the same source).
    void bind(ServiceStatus *status);
    /// @p detail: what is wrong (failed, or running with problems); shown in the tooltip.
    void setState(IndicatorState state, const QString &endpointUrl, const QString &detail);
    void setRequestCount(quint64 count);
    IndicatorState state() const { return m_state; }

    /// A balloon message, rate-limited per @p subject (10 min) and overall (30 s). Returns whether shown.
    bool notify(const QString &subject, const QString &title, const QString &message,
                QSystemTrayIcon::MessageIcon icon = QSystemTrayIcon::Warning);

    QMenu *menu() const { return m_menu; }
    QSystemTrayIcon *systemTrayIcon() const { return m_tray; }

Q_SIGNALS:
    void ready();
    void unavailable();
    void showWindowRequested();
    void startRequested();
    void stopRequested();
    void copyEndpointRequested();
    void quitRequested();

private:
    void updateToolTip();
    void tryInstall();

    QSystemTrayIcon *m_tray = nullptr;
    QMenu *m_menu = nullptr;
    QAction *m_startStop = nullptr;
    QAction *m_copy = nullptr;
    QTimer m_retry;
    int m_attemptsLeft = 0;
    bool m_installed = false;
    IndicatorState m_state = IndicatorState::Stopped;
    QString m_endpoint;
    QString m_detail;
    quint64 m_requests = 0;
    NotificationLimiter m_limiter;
};

} // namespace keyrelay
