#include "keyspage.h"

#include "keystore.h"
#include "keytablemodel.h"
#include "providerkeys.h"
#include "uilogging.h"
#include "userstores.h"

#include <QAction>
#include <QComboBox>
#include <QEvent>
#include <QFrame>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLocale>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QTableView>
#include <QVBoxLayout>

#include <algorithm>

namespace keyrelay {

KeysPage::KeysPage(KeyPool *pool, KeyStore *store, KeyTester *tester, QWidget *parent)
    : QWidget(parent), m_pool(pool), m_store(store), m_tester(tester),
      m_model(new KeyTableModel(pool, tester, this)), m_paste(new QPlainTextEdit(this)),
      m_add(new QPushButton(tr("&Add keys"), this)), m_remove(new QPushButton(tr("&Remove selected"), this)),
      m_status(new QLabel(this)), m_storeLabel(new QLabel(this)), m_emptyHint(new QLabel(this)),
      m_view(new QTableView(this))
{
    m_paste->setPlaceholderText(tr("Paste API keys here: one per line, separated by commas, or as k1|k2|k3"));
    m_add->setToolTip(tr("Add the pasted keys (Ctrl+Enter)"));
    m_paste->setTabChangesFocus(true);
    m_paste->setMaximumHeight(m_paste->fontMetrics().lineSpacing() * 5);
    m_add->setDefault(false);
    m_add->setEnabled(false);
    connect(m_paste, &QPlainTextEdit::textChanged, this,
            [this] { m_add->setEnabled(!m_paste->toPlainText().trimmed().isEmpty()); });
    connect(m_add, &QPushButton::clicked, this, &KeysPage::addFromPasteBox);
    auto *addShortcut = new QAction(m_paste);
    addShortcut->setShortcuts(
        { QKeySequence(Qt::CTRL | Qt::Key_Return), QKeySequence(Qt::CTRL | Qt::Key_Enter) });
    addShortcut->setShortcutContext(Qt::WidgetShortcut);
    connect(addShortcut, &QAction::triggered, m_add, &QPushButton::click);
    m_paste->addAction(addShortcut);

    m_view->setModel(m_model);
    m_view->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_view->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_view->setEditTriggers(QAbstractItemView::DoubleClicked | QAbstractItemView::EditKeyPressed);
    m_view->verticalHeader()->hide();
    m_view->setAlternatingRowColors(true);
    setUpColumns();
    if (!m_tester)
        m_view->hideColumn(KeyTableModel::TestColumn);
    connect(m_model, &QAbstractItemModel::modelReset, this, &KeysPage::installTestButtons);
    connect(m_model, &QAbstractItemModel::modelReset, this, &KeysPage::fitColumns);

    m_remove->setEnabled(false);
    connect(m_view->selectionModel(), &QItemSelectionModel::selectionChanged, this,
            [this] { m_remove->setEnabled(m_view->selectionModel()->hasSelection()); });
    connect(m_model, &QAbstractItemModel::modelReset, this,
            [this] { m_remove->setEnabled(m_view->selectionModel()->hasSelection()); });
    connect(m_remove, &QPushButton::clicked, this, &KeysPage::removeSelected);
    auto *removeShortcut = new QAction(m_view);
    removeShortcut->setShortcut(QKeySequence::Delete);
    removeShortcut->setShortcutContext(Qt::WidgetShortcut);
    connect(removeShortcut, &QAction::triggered, this, &KeysPage::removeSelected);
    m_view->addAction(removeShortcut);

    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_storeLabel->setWordWrap(true);
    m_storeLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    QPalette hint = m_storeLabel->palette();
    hint.setColor(QPalette::WindowText, hint.color(QPalette::PlaceholderText));
    m_storeLabel->setPalette(hint);
    m_mainStore = m_store;
    if (m_store)
        m_mainNotice = tr("Keys are stored in %1 (readable by you only), never in the settings file.")
                           .arg(m_store->location());
    else
        m_mainNotice = tr("Keys are kept in memory only.");
    m_storeLabel->setText(m_mainNotice);

    m_emptyHint->setWordWrap(true);
    m_emptyHint->setText(
        tr("No keys yet. Paste your API keys above: KeyRelay then uses them in turn for every "
           "request. Until you add one, each client's own key is passed through unchanged."));
    m_emptyHint->setVisible(m_pool->isEmpty());

    // Whose keys (issue 17): shown only while providers are configured.
    m_providerRow = new QWidget(this);
    m_providerCombo = new QComboBox(m_providerRow);
    m_providerCombo->setAccessibleName(tr("Provider"));
    m_providerCombo->setToolTip(tr("The provider whose keys this page shows, edits and tests"));
    m_providerCombo->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    auto *providerLabel = new QLabel(tr("Pro&vider:"), m_providerRow);
    providerLabel->setBuddy(m_providerCombo);
    auto *providerLayout = new QHBoxLayout(m_providerRow);
    providerLayout->setContentsMargins(0, 0, 0, 0);
    providerLayout->addWidget(providerLabel);
    providerLayout->addWidget(m_providerCombo);
    providerLayout->addStretch();
    m_providerRow->hide();
    connect(m_providerCombo, &QComboBox::currentIndexChanged, this, [this] {
        if (!m_providerKeys || m_providerCombo->currentIndex() < 0)
            return;
        const QString id = m_providerCombo->currentData().toString();
        KeyPool *selected = m_providerKeys->pool(id);
        if (!selected)
            return;
        setSource(selected, m_providerKeys->store(id));
        Q_EMIT providerSelected(id);
    });

    auto *pasteRow = new QHBoxLayout;
    pasteRow->addWidget(m_paste, 1);
    auto *addColumn = new QVBoxLayout;
    addColumn->addWidget(m_add);
    addColumn->addStretch();
    pasteRow->addLayout(addColumn);

    auto *bottomRow = new QHBoxLayout;
    bottomRow->addWidget(m_storeLabel, 1);
    bottomRow->addWidget(m_remove);

    auto *layout = new QVBoxLayout(this);
    layout->addWidget(m_providerRow);
    layout->addLayout(pasteRow);
    layout->addWidget(m_status);
    buildUndoBar();
    layout->addWidget(m_undoBar);
    layout->addWidget(m_emptyHint);
    layout->addWidget(m_view, 1);
    layout->addLayout(bottomRow);
    m_status->hide();

    connectPool();
    installTestButtons();
    setUpAccessibility();
}

void KeysPage::connectPool()
{
    connect(m_pool, &KeyPool::keysChanged, this, [this] { m_emptyHint->setVisible(m_pool->isEmpty()); });
    // Every change of the key list, from any page, goes to the store.
    connect(m_pool, &KeyPool::keysChanged, this, &KeysPage::save);
}

void KeysPage::setSource(KeyPool *pool, KeyStore *store)
{
    if (pool == m_pool && store == m_store)
        return;
    disconnect(m_pool, nullptr, this, nullptr);
    clearUndo(); // Undo puts keys back into the pool they came from: not across providers
    setStatus(QString(), false);
    m_pool = pool;
    m_store = store;
    connectPool();
    m_model->setPool(pool);
    m_emptyHint->setVisible(m_pool->isEmpty());
    updateStoreLabel();
}

void KeysPage::updateStoreLabel()
{
    if (m_store == m_mainStore) {
        m_storeLabel->setText(m_mainNotice);
        return;
    }
    const QString provider = m_providerCombo->currentText();
    m_storeLabel->setText(
        m_store ? tr("The keys of %1 are stored in %2 (readable by you only), never in the settings file.")
                      .arg(provider, m_store->location())
                : tr("The keys of %1 are kept in memory only.").arg(provider));
}

void KeysPage::setProviderKeys(ProviderKeys *keys)
{
    m_providerKeys = keys;
    refreshProviders();
}

void KeysPage::refreshProviders()
{
    const QString previous = currentProvider();
    const QList<ProviderConfig> providers
        = m_providerKeys ? m_providerKeys->providers() : QList<ProviderConfig>();
    {
        const QSignalBlocker blocker(m_providerCombo);
        m_providerCombo->clear();
        for (const ProviderConfig &provider : providers) {
            const QString text = provider.name.isEmpty() || provider.name == provider.id
                ? provider.id
                : QStringLiteral("%1 (%2)").arg(provider.name, provider.id);
            m_providerCombo->addItem(text, provider.id);
        }
    }
    m_providerRow->setVisible(!providers.isEmpty());
    if (providers.isEmpty()) {
        if (m_providerKeys)
            setSource(m_providerKeys->mainPool(), m_mainStore);
        Q_EMIT providerSelected(QString());
        return;
    }
    const int index = m_providerCombo->findData(previous);
    m_providerCombo->setCurrentIndex(-1);
    m_providerCombo->setCurrentIndex(index >= 0 ? index : 0); // emits: the source and the tester follow
}

QString KeysPage::currentProvider() const
{
    return m_providerRow->isHidden() ? QString() : m_providerCombo->currentData().toString();
}

bool KeysPage::selectProvider(const QString &providerId)
{
    const int index = m_providerCombo->findData(providerId);
    if (index < 0)
        return false;
    m_providerCombo->setCurrentIndex(index);
    return true;
}

void KeysPage::setUpAccessibility()
{
    m_paste->setAccessibleName(tr("API keys to add"));
    m_paste->setAccessibleDescription(
        tr("Paste API keys: one per line, separated by commas, or as k1|k2|k3. Ctrl+Enter adds them."));
    m_add->setAccessibleDescription(m_add->toolTip());
    m_view->setAccessibleName(tr("API keys"));
    m_view->setAccessibleDescription(
        tr("Arrow keys move between keys and columns; F2 edits a label, Space switches a key on or off, "
           "Enter on the Test column tests the key."));
    // The table is one Tab stop; the arrow keys move inside it.
    m_view->setTabKeyNavigation(false);
    setTabOrder(m_paste, m_add);
    setTabOrder(m_add, m_view);
    setTabOrder(m_view, m_remove);
    connect(m_view, &QAbstractItemView::activated, this, [this](const QModelIndex &index) {
        if (index.column() == KeyTableModel::TestColumn && m_tester)
            m_model->testKey(index.row());
    });
    connect(m_model, &QAbstractItemModel::modelReset, this, &KeysPage::describeRowButtons);
    connect(m_model, &QAbstractItemModel::dataChanged, this, &KeysPage::describeRowButtons);
    describeRowButtons();
}

void KeysPage::describeRowButtons()
{
    for (int row = 0; row < m_model->rowCount(); ++row) {
        QWidget *button = m_view->indexWidget(m_model->index(row, KeyTableModel::TestColumn));
        if (!button)
            continue;
        // The user's label, else the masked key (the Label column is empty until the key is named).
        QString label = m_model->index(row, KeyTableModel::LabelColumn).data().toString();
        if (label.isEmpty())
            label = m_model->index(row, KeyTableModel::KeyColumn).data().toString();
        const QString name = tr("Test key %1").arg(label);
        if (button->accessibleName() != name)
            button->setAccessibleName(name);
        if (button->accessibleDescription() != button->toolTip())
            button->setAccessibleDescription(button->toolTip());
        button->setFocusPolicy(Qt::NoFocus);
    }
}

KeysPage::~KeysPage()
{
    // The view and model are torn down by QWidget after this destructor: stop listening to them first.
    disconnect(m_view->selectionModel(), nullptr, this, nullptr);
    disconnect(m_model, nullptr, this, nullptr);
    disconnect(m_view->horizontalHeader(), nullptr, this, nullptr);
    m_view->viewport()->removeEventFilter(this);
}

void KeysPage::setStorageNotice(const QString &text)
{
    m_mainNotice = text;
    updateStoreLabel();
}

QString KeysPage::storageNotice() const
{
    return m_mainNotice;
}

QString KeysPage::storageNoticeFor(const UserStores &stores)
{
    switch (stores.reason) {
    case UserStores::Reason::Keychain:
        return tr("Keys are stored in the system keychain, never in the settings file.");
    case UserStores::Reason::ForcedFile:
        return tr("Keys are stored in %1, readable only by you (KEYRELAY_KEYSTORE=file).")
            .arg(stores.keysFile);
    case UserStores::Reason::NoKeychain:
        return tr("No system keychain (Secret Service) is available (%1); "
                  "keys are stored in %2, readable only by you.")
            .arg(stores.detail, stores.keysFile);
    case UserStores::Reason::MigrationFailed:
        return tr("The keys could not be moved into the system keychain (%1); "
                  "they stay in %2, readable only by you.")
            .arg(stores.detail, stores.keysFile);
    }
    return QString();
}

QString KeysPage::statusText() const
{
    return m_status->text();
}

void KeysPage::setStatus(const QString &text, bool error)
{
    m_status->setText(text);
    m_status->setStyleSheet(error ? QStringLiteral("color: #c02020;") : QString());
    m_status->setVisible(!text.isEmpty());
}

void KeysPage::addFromPasteBox()
{
    const QString text = m_paste->toPlainText();
    const int found = int(KeyPool::parseKeyList(text).size());
    const int added = m_model->addKeys(text);
    m_paste->clear();
    if (found == 0)
        setStatus(tr("No key found in the pasted text."), true);
    else if (added == found)
        setStatus(tr("Added %n key(s).", nullptr, added), false);
    else
        setStatus(tr("Added %1 of %2 key(s); the others were already in the list.").arg(added).arg(found),
                  false);
}

void KeysPage::removeSelected()
{
    QList<int> rows;
    const QModelIndexList selected = m_view->selectionModel()->selectedRows();
    for (const QModelIndex &index : selected)
        rows.append(index.row());
    if (rows.isEmpty())
        return;
    // Keep what goes, exactly, for Undo: keys are never shown whole, so they cannot be typed in again.
    std::sort(rows.begin(), rows.end());
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
    const QList<ApiKey> before = m_pool->keys();
    QList<QPair<int, ApiKey>> removed;
    for (int row : std::as_const(rows)) {
        if (row >= 0 && row < before.size())
            removed.append({ row, before.at(row) });
    }
    m_model->removeRows(rows);
    m_removed = removed;
    setStatus(QString(), false);
    m_undoLabel->setText(m_pool->isEmpty() && !before.isEmpty()
                             ? tr("Removed all %n key(s).", nullptr, int(removed.size()))
                             : tr("Removed %n key(s).", nullptr, int(removed.size())));
    m_undoBar->show();
    m_undoAction->setEnabled(true);
    m_undoTimer.start();
}

void KeysPage::buildUndoBar()
{
    m_undoBar = new QFrame(this);
    m_undoBar->setObjectName(QStringLiteral("undoBar"));
    m_undoBar->setFrameShape(QFrame::StyledPanel);
    m_undoLabel = new QLabel(m_undoBar);
    m_undoButton = new QPushButton(tr("&Undo"), m_undoBar);
    m_undoButton->setToolTip(tr("Put the removed keys back (Ctrl+Z)"));
    auto *row = new QHBoxLayout(m_undoBar);
    row->setContentsMargins(8, 4, 8, 4);
    row->addWidget(m_undoLabel, 1);
    row->addWidget(m_undoButton);
    m_undoBar->hide();
    connect(m_undoButton, &QPushButton::clicked, this, &KeysPage::undoRemove);

    m_undoAction = new QAction(tr("Undo remove"), this);
    m_undoAction->setShortcut(QKeySequence::Undo);
    // Anywhere on the page; the paste box keeps Ctrl+Z for its own text while it has the focus.
    m_undoAction->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    m_undoAction->setEnabled(false);
    connect(m_undoAction, &QAction::triggered, this, &KeysPage::undoRemove);
    addAction(m_undoAction);

    m_undoTimer.setSingleShot(true);
    m_undoTimer.setInterval(DefaultUndoTimeoutMs);
    connect(&m_undoTimer, &QTimer::timeout, this, &KeysPage::clearUndo);
}

void KeysPage::clearUndo()
{
    m_removed.clear();
    m_undoTimer.stop();
    m_undoBar->hide();
    m_undoAction->setEnabled(false);
}

int KeysPage::undoRemove()
{
    if (m_removed.isEmpty())
        return 0;
    QList<ApiKey> keys = m_pool->keys();
    int restored = 0;
    for (const auto &[row, key] : std::as_const(m_removed)) {
        const bool present = std::any_of(keys.cbegin(), keys.cend(),
                                         [&key](const ApiKey &other) { return other.secret == key.secret; });
        if (present)
            continue;
        keys.insert(qBound(0, row, int(keys.size())), key);
        ++restored;
    }
    clearUndo();
    if (restored > 0)
        m_pool->setKeys(keys);
    setStatus(tr("Put back %n key(s).", nullptr, restored), false);
    return restored;
}

void KeysPage::save()
{
    if (!m_store)
        return;
    QString error;
    if (!m_store->save(m_pool->keys(), &error)) {
        qCWarning(lcUi).noquote() << error;
        setStatus(tr("The keys could not be saved: %1").arg(error), true);
        Q_EMIT saveFailed(error);
    }
}

void KeysPage::setUpColumns()
{
    // Columns give way in a small window: the counters keep what they need, the State column gives up
    // width down to a minimum (eliding, the whole state in its tooltip) and the Test result takes the
    // rest, so that Test and its result stay on screen. A column the user resizes stays as set.
    m_view->setWordWrap(false);
    m_view->setTextElideMode(Qt::ElideRight);
    QHeaderView *header = m_view->horizontalHeader();
    header->setStretchLastSection(true);
    header->setSectionResizeMode(QHeaderView::Interactive);
    header->setMinimumSectionSize(m_view->fontMetrics().horizontalAdvance(QLatin1Char('M')) * 3);
    m_view->viewport()->installEventFilter(this);
    connect(header, &QHeaderView::sectionResized, this, [this](int section) {
        if (!m_fittingColumns && section != KeyTableModel::TestResultColumn)
            m_userSizedColumns = true;
    });
    fitColumns();
}

void KeysPage::fitColumns()
{
    if (m_userSizedColumns)
        return;
    m_fittingColumns = true;
    QHeaderView *header = m_view->horizontalHeader();
    const QFontMetrics metrics = m_view->fontMetrics();
    const int padding = metrics.horizontalAdvance(QLatin1Char('M'));
    const QAbstractItemView *view = m_view; // sizeHintForColumn() is public there
    const auto natural = [view, header, padding](int column) {
        return qMax(header->sectionSizeHint(column), view->sizeHintForColumn(column)) + padding / 2;
    };
    int used = 0;
    for (int column : { int(KeyTableModel::KeyColumn), int(KeyTableModel::EnabledColumn),
                        int(KeyTableModel::RequestsColumn), int(KeyTableModel::ErrorsColumn),
                        int(KeyTableModel::TokensTodayColumn), int(KeyTableModel::LastUsedColumn),
                        int(KeyTableModel::TestColumn) }) {
        if (m_view->isColumnHidden(column))
            continue;
        // The Test buttons fill their cells: as wide as their word, not a dialog button's 80 pixels.
        const int width = column == KeyTableModel::TestColumn
            ? qMax(header->sectionSizeHint(column), metrics.horizontalAdvance(tr("Test")) + 2 * padding)
            : natural(column);
        m_view->setColumnWidth(column, width);
        used += width;
    }
    // What is left is shared by Label, State and Test result. With room: the label's natural width
    // (at most about 14 characters) and "rate-limited until 10:37 AM" (room for the states to come,
    // not only those shown now: the table is fitted when keys are added, before any state is known).
    // Short of room, State gives way first, then Label, each down to a minimum (elided, whole in the
    // tooltip); the Test result keeps at least its minimum and takes what remains.
    const QString sampleTime = QLocale().toString(QTime(10, 37), QLocale::ShortFormat);
    const int longestState
        = qMax(metrics.horizontalAdvance(KeyTableModel::tr("rate-limited until %1").arg(sampleTime)),
               metrics.horizontalAdvance(KeyTableModel::tr("invalid, next check %1").arg(sampleTime)));
    const int stateMinimum = padding * 6;
    const int labelMinimum = padding * 4;
    const int resultMinimum = padding * 8;
    int state = qMax(stateMinimum, longestState + padding);
    int label = qMax(labelMinimum, qMin(natural(KeyTableModel::LabelColumn), padding * 9));
    int deficit = used + label + state + resultMinimum - m_view->viewport()->width();
    const int stateGives = qBound(0, deficit, state - stateMinimum);
    state -= stateGives;
    deficit -= stateGives;
    label -= qBound(0, deficit, label - labelMinimum);
    m_view->setColumnWidth(KeyTableModel::LabelColumn, label);
    m_view->setColumnWidth(KeyTableModel::StateColumn, state);
    m_fittingColumns = false;
}

bool KeysPage::eventFilter(QObject *watched, QEvent *event)
{
    if (watched == m_view->viewport() && event->type() == QEvent::Resize)
        fitColumns();
    return QWidget::eventFilter(watched, event);
}

void KeysPage::installTestButtons()
{
    if (!m_tester)
        return;
    for (int row = 0; row < m_model->rowCount(); ++row) {
        auto *button = new QPushButton(tr("Test"), m_view);
        button->setToolTip(tr("Ask the upstream for its model list with this key"));
        button->setObjectName(QStringLiteral("testButton%1").arg(row));
        connect(button, &QPushButton::clicked, this, [this, row] { m_model->testKey(row); });
        m_view->setIndexWidget(m_model->index(row, KeyTableModel::TestColumn), button);
    }
}

} // namespace keyrelay
