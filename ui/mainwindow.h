// The main window: a status line (endpoint, state, requests today) over the Keys, Log, Settings, Usage and
// Providers pages.
// The status line and the tray show one ServiceStatus.
#pragma once

#include "proxyconfig.h"

#include <QMainWindow>

class QLabel;
class QPushButton;
class QTabWidget;

namespace keyrelay {

class AutostartManager;
class KeyPool;
class KeyStore;
class KeyTester;
class KeysPage;
class LogModel;
class LogPage;
class ProviderKeys;
class ProvidersPage;
class ProxyCredentials;
class ProxyService;
class ServiceStatus;
class SettingsPage;
class SettingsRegistry;
class UsagePage;
class UsageStore;
struct RequestRecord;

class MainWindow : public QMainWindow
{
    Q_OBJECT
public:
    /// Nothing is owned but the pages; @p store, @p autostart and @p usage may be null (no Usage page).
    MainWindow(SettingsRegistry *settings, KeyPool *pool, KeyStore *store, ProxyService *service,
               AutostartManager *autostart, UsageStore *usage = nullptr, QWidget *parent = nullptr);
    ~MainWindow() override;

    enum Page { KeysTab, LogTab, SettingsTab, UsageTab, ProvidersTab };
    void showPage(Page page);

    /// Keeps the upstream proxy's password out of the settings file (here and on the Settings page); the
    /// proxy and the key tester get the setting completed with it. May be null (the URL is used as stored).
    void setProxyCredentials(ProxyCredentials *credentials);

    /// The providers' own keys (issue 17): the Keys page's provider selector and the Providers page's
    /// Apply and Test use them. May stay unset (providers then pass the client's key through).
    void setProviderKeys(ProviderKeys *keys);

    /// With a tray, closing the window hides it; without one, closing quits.
    void setHideOnClose(bool hide) { m_hideOnClose = hide; }
    /// A message in the status line; errors stay until the next message.
    void showMessage(const QString &text, bool error);
    QString messageText() const;
    QString stateText() const;
    /// The line under the state that explains it (stopped, why it failed, what is wrong).
    QString detailText() const;
    QString endpointText() const;
    /// What the status line shows as "Requests today" (the usage store's figure).
    quint64 requestsToday() const;
    QString requestsText() const;
    /// The state the status line and the tray show.
    ServiceStatus *serviceStatus() const { return m_status; }

    // --- Issue 15 (notices): one hook, nothing else in this class depends on it. ---
    /// Puts @p banner (the notice banner) between the status line and the pages; the window owns it.
    void addBanner(QWidget *banner);
    // --- end issue 15 ---

    KeysPage *keysPage() const { return m_keysPage; }
    LogPage *logPage() const { return m_logPage; }
    SettingsPage *settingsPage() const { return m_settingsPage; }
    UsagePage *usagePage() const { return m_usagePage; }
    ProvidersPage *providersPage() const { return m_providersPage; }
    LogModel *logModel() const { return m_logModel; }
    QTabWidget *tabs() const { return m_tabs; }

public Q_SLOTS:
    /// Shows, raises and activates the window (tray click, second launch).
    void bringToFront();
    void copyEndpoint();
    void startProxy();
    void stopProxy();
    /// Ctrl+Q and the tray's Quit: asks about unapplied settings first, then emits quitRequested().
    void requestQuit();

Q_SIGNALS:
    /// The user wants KeyRelay to end (unapplied settings were applied or dropped).
    void quitRequested();
    /// The proxy failed to start (at start-up, from the window or the settings); for the tray.
    void proxyFailed(const QString &error);

protected:
    void closeEvent(QCloseEvent *event) override;

private:
    void updateState();
    void createShortcuts();
    /// Leaving the Settings page (@p index is where to): asks about unapplied changes.
    void onTabChanged(int index);
    /// The settings' proxy configuration with the proxy password put back in, to run with.
    ProxyConfig runtimeConfig() const;
    /// The Keys page's Test asks the provider whose keys it shows (its base URL, kind and proxy).
    void updateTesterConfig();
    /// The log's Provider column shows while providers are configured.
    void updateProviderColumn();
    /// Before leaving a page with unapplied edits, closing or quitting: asks (Settings, Providers).
    bool confirmPendingPages();
    /// A row in the log for a key that stopped working (@p reason) or works again.
    void addKeyEvent(const QString &label, const QString &what, const QString &reason);
    void onRequestFinished(const RequestRecord &record);

    SettingsRegistry *m_settings;
    ProxyCredentials *m_credentials = nullptr;
    KeyPool *m_pool;
    ProxyService *m_service;
    KeyTester *m_tester;
    LogModel *m_logModel;
    QTabWidget *m_tabs;
    KeysPage *m_keysPage;
    LogPage *m_logPage;
    SettingsPage *m_settingsPage;
    UsagePage *m_usagePage = nullptr;
    ProvidersPage *m_providersPage;
    QLabel *m_stateLabel;
    QLabel *m_endpointLabel;
    QPushButton *m_copyButton;
    QPushButton *m_startStopButton;
    QLabel *m_requestsLabel;
    QLabel *m_detailLabel;
    QLabel *m_messageLabel;
    ServiceStatus *m_status;
    bool m_hideOnClose = false;
    int m_currentTab = 0;
    bool m_switchingBack = false;
};

} // namespace keyrelay
