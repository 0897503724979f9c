// The request log: a bounded ring buffer of RequestRecords, fed in batches so that bursts of
// thousands of requests per second cost the UI one model update per flush.
#pragma once

#include "requestrecord.h"

#include <QAbstractTableModel>
#include <QSortFilterProxyModel>
#include <QTimer>

namespace keyrelay {

class LogModel : public QAbstractTableModel
{
    Q_OBJECT
public:
    enum Column {
        TimeColumn,
        MethodColumn,
        PathColumn,
        ModelColumn,
        ProviderColumn, ///< the provider that served or was tried (issue 17)
        KeyColumn,
        StatusColumn,
        LatencyColumn,
        StreamedColumn,
        BytesColumn,
        TokensColumn,
        ErrorColumn,
        ColumnCount
    };
    static constexpr int DefaultCapacity = 10000;
    static constexpr int DefaultFlushMs = 250;
    /// Raw record access for filters: Qt::UserRole on any column returns the status code.
    static constexpr int StatusRole = Qt::UserRole + 1;
    static constexpr int IsErrorRole = Qt::UserRole + 2;

    explicit LogModel(QObject *parent = nullptr, int capacity = DefaultCapacity,
                      int flushMs = DefaultFlushMs);

    int rowCount(const QModelIndex &parent = QModelIndex()) const override;
    int columnCount(const QModelIndex &parent = QModelIndex()) const override;
    QVariant data(const QModelIndex &index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

    int capacity() const { return m_capacity; }
    int pendingCount() const { return int(m_pending.size()); }
    const RequestRecord &record(int row) const { return m_rows.at(row); }
    static bool isError(const RequestRecord &record);
    /// A row about a key's state (method "KEY"), not a request.
    static bool isKeyEvent(const RequestRecord &record);
    /// Rows that are requests (every row but the key events).
    int requestCount() const { return int(m_rows.size()) - m_keyEvents; }

    /// The cells of @p rows as CSV (RFC 4180 quoting), with a header line.
    QString toCsv(const QList<int> &rows) const;
    /// One CSV field: quoted when it holds a comma, quote, CR or LF (or leading/trailing spaces);
    /// formula-looking cells (=, +, -, @, tab, CR first) are neutralised with a leading apostrophe.
    static QString csvField(const QString &text);
    /// The text of a cell as displayed (and exported).
    QString cellText(int row, int column) const;
    QString headerText(int column) const;

public Q_SLOTS:
    /// Queues a record; it appears at the next flush.
    void append(const keyrelay::RequestRecord &record);
    /// Moves the queued records into the model now, in the order of their start times (a request
    /// that ended late goes above the rows that began after it).
    void flush();
    void clear();

private:
    int m_capacity;
    QList<RequestRecord> m_rows;
    QList<RequestRecord> m_pending;
    QTimer m_flushTimer;
    int m_keyEvents = 0; ///< rows that are key events
};

/// Text filter over every column plus an "errors only" switch.
class LogFilterModel : public QSortFilterProxyModel
{
    Q_OBJECT
public:
    explicit LogFilterModel(QObject *parent = nullptr);

    void setText(const QString &text);
    void setErrorsOnly(bool errorsOnly);
    bool errorsOnly() const { return m_errorsOnly; }

protected:
    bool filterAcceptsRow(int sourceRow, const QModelIndex &sourceParent) const override;

private:
    QString m_text;
    bool m_errorsOnly = false;
};

} // namespace keyrelay
